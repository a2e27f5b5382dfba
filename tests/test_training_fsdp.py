"""Multi-process rehearsals of a GPU run's end (issue #31): two processes over gloo on a tiny model, each
ending in a model stock transformers loads whose weights equal one process's with the same global batch.

DDP runs as users launch it (`torchrun -m longwin train`). FSDP cannot be launched on CPU processes the way
users launch it: accelerate (1.15 and 1.16) turns FSDP on only for accelerator process groups, so
`accelerate launch --config_file accelerate-fsdp.yaml --num_processes 2 -m longwin train ... --use-cpu true`
and `torchrun ... --use-cpu true --fsdp ...` both run plain DDP on CPU without a word (with `--cpu`,
`accelerate launch` starts one process; without `--use-cpu` each rank trains alone, as there is no CUDA).
torch's FSDP2 `fully_shard` runs on CPU over gloo, so the FSDP runs here go through `fsdp_on_cpu`, which lifts
only that gate: the launcher, the preset's settings, the Trainer's FSDP2 preparation, sharded checkpoints
and longwin's final save (`save_final`, `save_lora_model`) are the ones a GPU run meets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from conftest import _TEXT, make_tiny_llama
from longwin.training.config import recipe_dir
from longwin.training.runner import CARD
from test_training import _train_args
from test_training_distributed import _free_port

TESTS = Path(__file__).parent
LORA = ("--lora", "true", "--lora-r", "4")


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}


def _train(launcher: list[str], model_dir: Path, corpus: Path, out: Path, per_device: int, *extra: str) -> None:
    args = _train_args(model_dir, corpus, out, "--logging-steps", "1", *extra)
    args[args.index("--per-device-train-batch-size") + 1] = str(per_device)
    done = subprocess.run(launcher + args, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """The model as stock transformers loads it (tied weights resolved), so differently saved folders compare."""
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def _assert_same_model(got: Path, want: Path, base: Path) -> None:
    assert (got / CARD).is_file() and (want / CARD).is_file()
    a, b, start = _weights(got), _weights(want), _weights(base)
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=2e-6, rtol=1e-4), (name, (a[name] - b[name]).abs().max())
    moved = max((a[name] - start[name]).abs().max().item() for name in a)
    assert moved > 1e-4, "training changed nothing, so equal weights would prove nothing"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer) -> tuple[Path, Path, Callable[[bool], Path]]:
    """(model folder, corpus, one-process result with global batch 4, LoRA or not: trained once per module)."""
    root = tmp_path_factory.mktemp("fsdp")
    model_dir, corpus = root / "base", root / "corpus.jsonl"
    make_tiny_llama(max_position_embeddings=64).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    corpus.write_text("".join(json.dumps({"text": " ".join(_TEXT[i::10][:30])}) + "\n" for i in range(10)))
    done: dict[bool, Path] = {}

    def single(lora: bool) -> Path:
        if lora not in done:
            done[lora] = root / f"single-{lora}"
            _train([sys.executable, "-m", "longwin"], model_dir, corpus, done[lora], 4, *(LORA if lora else ()))
        return done[lora]

    return model_dir, corpus, single


def _torchrun(module: str) -> list[str]:
    port = ["--master_addr", "127.0.0.1", "--master_port", _free_port()]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *port, "-m", module]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora-merged"])
def test_two_process_ddp_final_model_equals_one_process(setup, tmp_path, lora):
    model_dir, corpus, single = setup
    out = tmp_path / "ddp"
    _train(_torchrun("longwin"), model_dir, corpus, out, 2, *(LORA if lora else ()))  # 2 x 2 = global batch 4
    assert json.loads((out / CARD).read_text())["global_batch"] == 4
    _assert_same_model(out, single(lora), model_dir)


def _fsdp_config(tmp_path: Path) -> Path:
    """The shipped FSDP preset for two CPU processes: no bf16 autocast on CPU, and FSDP2's default sharded
    state dicts, so the final save's switch to full weights is what is tested."""
    config = yaml.safe_load((recipe_dir() / "presets" / "accelerate-fsdp.yaml").read_text())
    config.update(mixed_precision="no", num_processes=2)
    config["fsdp_config"]["fsdp_state_dict_type"] = "SHARDED_STATE_DICT"
    path = tmp_path / "accelerate-fsdp-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora-merged"])
def test_two_process_fsdp2_final_model_is_full_and_equals_one_process(setup, tmp_path, lora):
    model_dir, corpus, single = setup
    out = tmp_path / "fsdp"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(_fsdp_config(tmp_path))]
    launch += ["--main_process_port", _free_port(), "-m", "fsdp_on_cpu"]
    _train(launch, model_dir, corpus, out, 2, "--use-cpu", "true", *(LORA if lora else ()))
    checkpoint = next(out.glob("checkpoint-*"))
    assert list(checkpoint.glob("pytorch_model_fsdp_0")), "the run was not sharded by FSDP"
    assert json.loads((out / CARD).read_text())["global_batch"] == 4
    _assert_same_model(out, single(lora), model_dir)
