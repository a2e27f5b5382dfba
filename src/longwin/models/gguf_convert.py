"""Turn a GGUF file into a plain safetensors folder, once, in the longwin cache.

transformers can read GGUF directly, but it dequantises every tensor on each load (30-60 s for
SmolLM2-135M on 2 cores) and every consumer would need to know the `gguf_file=` argument. Converting
once gives a folder that stock `from_pretrained` loads quickly. The cache key covers the file's
path, size and mtime, so replacing the GGUF produces a new folder instead of a stale one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longwin.errors import LongwinError
from longwin.models.compat import dtype_keyword

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# Part of the cache key: bump it when the conversion output changes so old folders are not reused.
_FORMAT_VERSION = 1


def cache_root() -> Path:
    """`$LONGWIN_CACHE/models`, else `~/.cache/longwin/models`."""
    override = os.environ.get("LONGWIN_CACHE")
    base = Path(override).expanduser() if override else Path.home() / ".cache" / "longwin"
    return base / "models"


def converted_folder(gguf_path: Path) -> Path:
    """Where the conversion of `gguf_path` lives (it may not exist yet): `<stem>-<12 hex digits>`."""
    stat = gguf_path.stat()
    key = f"{gguf_path.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}\n{_FORMAT_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root() / f"{gguf_path.stem}-{digest}"


def convert_gguf(gguf_path: Path, adjust_config: Callable[[PretrainedConfig], None] | None = None) -> Path:
    """Return the cached safetensors folder for `gguf_path`, converting it first if needed.

    The folder is written under a temporary name and renamed into place, so a crash or a
    concurrent conversion never leaves a half-written folder that later loads would trust.
    `adjust_config` may fix the converted config before it is saved.
    """
    target = converted_folder(gguf_path)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        print(f"longwin: converting {gguf_path} to {target} (once)", file=sys.stderr)
        _convert_into(gguf_path, tmp, adjust_config)
        os.rename(tmp, target)
    except OSError:
        if target.is_dir():  # another process finished the same conversion first
            return target
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_into(gguf_path: Path, folder: Path, adjust_config: Callable[[PretrainedConfig], None] | None) -> None:
    """Dequantise to fp32 with transformers' own GGUF reader and save model + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source: dict[str, Any] = dict(
        pretrained_model_name_or_path=gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
    )
    try:
        dense_fp32 = {**_dense_gguf_kwargs(), dtype_keyword(): torch.float32}
        model = AutoModelForCausalLM.from_pretrained(**source, **dense_fp32)
        tokenizer = AutoTokenizer.from_pretrained(**source)
    except (ValueError, KeyError) as exc:  # bad magic, unsupported architecture, missing metadata
        raise LongwinError(f"{gguf_path}: cannot convert this GGUF file: {first_line(exc)}") from exc
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # Every weight is a dense tensor (see `_dense_gguf_kwargs`); what is left is the "loaded from
        # GGUF" marker, which would make `save_pretrained` refuse a model that is plain by now.
        quantizer.remove_quantization_config(model)
    if adjust_config is not None:
        adjust_config(model.config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _dense_gguf_kwargs() -> dict:
    """transformers 5.x may keep GGUF weights packed in their blocks (when the `kernels` package has a
    matmul kernel for the device); ask for plain dense weights so they can be saved as safetensors.
    4.x always dequantises and has no `GgufConfig`."""
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line `LongwinError`s."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
