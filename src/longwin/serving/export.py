"""`longwin export`'s GGUF writer: a saved Llama folder (the toy, SmolLM2, Llama 2/3) as one GGUF file that
llama.cpp runs at the extended length, written with the `gguf` package's own writer and quantisers.

The tensors are renamed to llama.cpp's names and the query/key rows of each head reordered: transformers
rotates the two halves of a head against each other, llama.cpp's Llama graph rotates adjacent pairs. The
RoPE scaling goes in as llama.cpp reads it (`gguf_rope`), the tokenizer as GPT-2 style BPE (`gguf_vocab`).
The file is written under a temporary name and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.serving.gguf_rope import GgufRope, gguf_rope
from longwin.serving.gguf_vocab import add_vocab

# --outtype -> (GGML tensor type of the 2-D weights, general.file_type); see gguf.GGMLQuantizationType/LlamaFileType
OUTTYPES: dict[str, tuple[str, str]] = {
    "f32": ("F32", "ALL_F32"),
    "f16": ("F16", "MOSTLY_F16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
}


@dataclass(frozen=True)
class Exported:
    path: Path
    outtype: str
    seconds: float
    bytes: int
    rope: GgufRope


def export_gguf(folder: Path, outfile: Path, outtype: str = "f16") -> Exported:
    """Write `folder`'s model as a GGUF at `outfile`; one line if llama.cpp could not run it as saved."""
    import gguf

    started = time.time()
    if outtype not in OUTTYPES:
        raise LongwinError(f"unknown --outtype {outtype!r}; choose from {', '.join(OUTTYPES)}")
    config = exportable_config(folder)
    rope = gguf_rope(config)
    print(f"longwin export: {folder} -> {outfile} ({outtype}, {_describe(rope)})", file=sys.stderr)
    partial = outfile.with_name(f".{outfile.name}.partial")
    writer = gguf.GGUFWriter(partial, "llama")
    try:
        _add_hyperparameters(writer, config, rope, getattr(gguf.LlamaFileType, OUTTYPES[outtype][1]))
        add_vocab(writer, folder, config.vocab_size)
        for name, array in _tensors(folder, config, rope):
            writer.add_tensor(name, *_encoded(array, outtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, outfile)
    finally:
        partial.unlink(missing_ok=True)
    done = Exported(outfile, outtype, time.time() - started, outfile.stat().st_size, rope)
    print(f"longwin export: wrote {outfile} ({done.bytes / 2**20:.1f} MiB) in {done.seconds:.1f} s", file=sys.stderr)
    return done


def exportable_config(folder: Path) -> Any:
    """The folder's transformers config, once its raw `config.json` shows a model export can write."""
    from transformers import AutoConfig

    path = folder / "config.json"
    if not path.is_file():
        raise LongwinError(f"{folder} holds no saved model (config.json); an adapter-only folder needs merging")
    raw = json.loads(path.read_text())
    kind = raw.get("model_type")
    if kind == "sharedllm":
        raise LongwinError("SharedLLM folders cannot be exported: llama.cpp has no graph for its tree cross-attention")
    if kind != "llama":
        raise LongwinError(f"export writes the Llama architecture (toy, SmolLM2, Llama 2/3), not {kind}")
    if raw.get("attention_bias") or raw.get("mlp_bias"):
        raise LongwinError("export writes Llama models without attention or MLP biases")
    return AutoConfig.from_pretrained(folder, local_files_only=True)


def _describe(rope: GgufRope) -> str:
    kind = rope.keys.get("rope.scaling.type", "none")
    extra = " with per-pair rope_freqs" if rope.rope_freqs else ""
    return f"RoPE {kind}{extra}, context {rope.context_length}"


def _add_hyperparameters(writer: Any, config: Any, rope: GgufRope, file_type: int) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_context_length(rope.context_length)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(rope.freq_base)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    for key, value in rope.keys.items():
        full = f"llama.{key}"
        if isinstance(value, str):
            writer.add_string(full, value)
        elif isinstance(value, int):
            writer.add_uint32(full, value)
        else:
            writer.add_float32(full, value)


def _tensors(folder: Path, config: Any, rope: GgufRope) -> Iterator[tuple[str, Any]]:
    """(llama.cpp name, float32 numpy array) for every weight, the rope_freqs tensor first."""
    import gguf
    import numpy as np

    if rope.rope_freqs is not None:
        yield "rope_freqs.weight", np.asarray(rope.rope_freqs, dtype=np.float32)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)  # llama.cpp's own table
    for name, tensor in _safetensors(folder):
        target = names.get_name(name, try_suffixes=(".weight",)) if name.endswith(".weight") else None
        if target is None:
            raise LongwinError(f"{folder}: export does not know where the weight {name} goes in a Llama GGUF")
        array = tensor.float().numpy()
        if target.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config.num_attention_heads if "attn_q" in target else config.num_key_value_heads
            array = _pairs_adjacent(array, heads)
        yield target, array


def _pairs_adjacent(rows: Any, heads: int) -> Any:
    """Reorder each head's output rows from transformers' (first half, second half) rotation layout to
    llama.cpp's adjacent pairs: row i of the first half and row i of the second half become rows 2i, 2i+1."""
    out, width = rows.shape
    head_dim = out // heads
    halves = rows.reshape(heads, 2, head_dim // 2, width)
    return halves.transpose(0, 2, 1, 3).reshape(out, width)


def _safetensors(folder: Path) -> Iterator[tuple[str, Any]]:
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else None
    for file in files or ["model.safetensors"]:
        if not (folder / file).is_file():
            raise LongwinError(f"{folder} has no {file} (export reads safetensors weights)")
        with safe_open(folder / file, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield name, handle.get_tensor(name)


def _encoded(array: Any, outtype: str) -> tuple[Any, ...]:
    """(data,) or (data, raw_shape, raw_dtype) for `GGUFWriter.add_tensor`: 1-D tensors and rows that do not
    fill whole quantisation blocks stay float32 / float16, as llama.cpp's own converter keeps them."""
    import gguf
    import numpy as np

    if array.ndim == 1 or outtype == "f32":
        return (array.astype(np.float32),)
    kind = getattr(gguf.GGMLQuantizationType, OUTTYPES[outtype][0])
    block = gguf.GGML_QUANT_SIZES[kind][0]
    if outtype == "f16" or array.shape[-1] % block:
        return (array.astype(np.float16),)
    return gguf.quants.quantize(array, kind), None, kind  # the writer reads the shape off the block bytes
