"""Model references -> local folders -> loaded (model, tokenizer).

A reference is, in this order: an alias from `ALIASES`, a local folder, a `.gguf` file, or a Hugging
Face id already in the local HF cache. Nothing is downloaded: the project must run with no hub
access, so a missing id fails fast with instructions instead of hanging on the network. Every
reference ends as a plain folder, so all later loading is stock `from_pretrained`.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING

from longwin.errors import LongwinError
from longwin.models.aliases import ALIASES
from longwin.models.compat import dtype_keyword
from longwin.models.gguf_convert import convert_gguf, first_line
from longwin.models.weights import folder_problem

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# `name` (legacy) or `owner/name`, as the hub allows them.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
# model types longwin defines, and the package whose import registers each with the Auto classes
PLUGIN_MODEL_TYPES = {"longwin-sharedllm": "longwin.methods.sharedllm"}
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def model_path(ref: str) -> Path:
    """The local folder that `AutoModelForCausalLM` and `AutoTokenizer.from_pretrained` load for `ref`.

    GGUF files (and the `smollm2-135m` alias) are converted once into the longwin cache.
    Raises `LongwinError` with a one-line reason for anything that is not a loadable causal LM.
    """
    if ref in ALIASES:
        folder = ALIASES[ref].resolve()
    else:
        path = Path(ref).expanduser()
        if path.is_dir():
            folder = path
        elif path.is_file():
            if path.suffix.lower() != ".gguf":
                raise LongwinError(f"{ref}: not a model folder or a .gguf file")
            folder = convert_gguf(path)
        elif _HUB_ID.match(ref) and not ref.lower().endswith(".gguf"):
            folder = _hub_snapshot(ref)
        else:
            raise LongwinError(f"{ref}: no such file or folder (aliases: {', '.join(ALIASES)})")
    check_model_folder(folder)
    return folder.absolute()


def load_model(
    ref: str,
    *,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    device: str | torch.device | None = None,
    config: PretrainedConfig | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load `ref` (see `model_path`) as a causal LM in eval mode, with its tokenizer.

    `dtype=None` keeps the dtype stored in the checkpoint (the same on transformers 4.x and 5.x);
    `attn_implementation` is passed to transformers ("eager", "sdpa", "flash_attention_2", ...);
    `config` replaces the stored config (e.g. one whose RoPE was rescaled for a longer window).
    """
    folder = model_path(ref)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict = {dtype_keyword(): _torch_dtype(dtype), "local_files_only": True}
    if config is not None:
        kwargs["config"] = config
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (pickle.UnpicklingError, OSError) as exc:
        refused = _unpickling_refusal(exc)  # 5.x raises it as is, 4.x inside an OSError
        if refused is None:
            raise
        raise LongwinError(
            f"{ref}: refused to load its weights: they hold more than plain tensors, and unpickling "
            f"them could run code ({first_line(refused)[:80]}...); convert them to safetensors "
            f"where you trust them"
        ) from None
    except (ValueError, ImportError) as exc:
        if attn_implementation is None:
            raise
        raise LongwinError(
            f"cannot load {ref} with attn_implementation={attn_implementation!r}: {first_line(exc)}"
        ) from exc
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if device is not None:
        model.to(device)  # type: ignore[arg-type]  # transformers types its @wraps(Module.to) override as unbound
    return model.eval(), tokenizer


def _unpickling_refusal(exc: BaseException) -> pickle.UnpicklingError | None:
    """The `UnpicklingError` of torch's safe loader in `exc`'s chain of causes, if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, pickle.UnpicklingError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def check_model_folder(folder: Path) -> None:
    """Fail early, in one line, on folders transformers would reject with a long traceback."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        hint = "; to load a GGUF pass the .gguf file itself" if any(folder.glob("*.gguf")) else ""
        raise LongwinError(f"{folder}: not a model folder (no config.json){hint}")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as exc:
        raise LongwinError(f"{config_file}: not a valid model config ({first_line(exc)})") from exc
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type in PLUGIN_MODEL_TYPES and model_type not in CONFIG_MAPPING:
        raise LongwinError(
            f"{folder}: a {model_type} model; import {PLUGIN_MODEL_TYPES[model_type]} first (it registers the "
            f"model type; `longwin eval` and `longwin train` do)"
        )
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in PLUGIN_MODEL_TYPES:
        raise LongwinError(f"{folder}: model_type {model_type!r} is not a causal LM architecture transformers supports")
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise LongwinError(f"{folder}: no weights (model.safetensors or pytorch_model.bin)")
    problem = folder_problem(folder, _WEIGHT_FILES)
    if problem:
        raise LongwinError(f"{folder}: broken weights, {problem}")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise LongwinError(f"{folder}: no tokenizer files ({' / '.join(_TOKENIZER_FILES)})")


def _hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot of `repo_id`, looked up in the local HF cache only."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (OSError, ValueError) as exc:  # not cached (LocalEntryNotFoundError) or an invalid id
        raise LongwinError(
            f"{repo_id!r} is not available locally (not an alias, a path, or in the local Hugging Face cache): "
            f"run `huggingface-cli download {repo_id}` on a machine with hub access and copy the cache here, "
            f"or pass a local folder (aliases: {', '.join(ALIASES)})"
        ) from exc


def _torch_dtype(dtype: str | torch.dtype | None) -> str | torch.dtype:
    """Accept "bfloat16"-style names or torch dtypes; None means "auto" (the checkpoint's dtype)."""
    import torch

    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise LongwinError(f"unknown dtype {dtype!r} (use e.g. float32, bfloat16, float16 or auto)")
    return resolved
