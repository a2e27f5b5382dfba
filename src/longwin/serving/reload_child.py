"""The fresh-process half of the reload check: load a saved folder with stock `from_pretrained`, exactly as a
user would, and score the probe with its RoPE config and with the RoPE reset to native.

Run as `python -m longwin.serving.reload_child FOLDER PROBE OUT`; nothing from the saving process (a patched
rotary module, a config changed after loading) can leak into what this process sees.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _logits(folder: Path, probe: dict, config: object | None) -> object:
    import torch
    from transformers import AutoModelForCausalLM

    from longwin.models.compat import dtype_keyword

    extra = {dtype_keyword(): torch.float32, **({} if config is None else {"config": config})}
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, **extra)
    with torch.no_grad():
        out = model(input_ids=probe["input_ids"], position_ids=probe["position_ids"], use_cache=False)
    return out.logits.float()


def main(argv: list[str]) -> int:
    import torch
    from transformers import AutoConfig

    from longwin.rope import unscaled

    folder, probe_path, out_path = Path(argv[0]), Path(argv[1]), Path(argv[2])
    probe = torch.load(probe_path, weights_only=True)
    reloaded = _logits(folder, probe, None)
    native = unscaled(AutoConfig.from_pretrained(folder, local_files_only=True))
    plain = _logits(folder, probe, native)
    torch.save({"reloaded": reloaded, "unscaled": plain}, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
