"""A byte-level BPE tokenizer (GPT-2 style: the toy's and SmolLM2's) as GGUF tokenizer metadata.

The tokens, their types and the merges come from the saved `tokenizer.json`; special token ids and the
merges are written by the `gguf` package's own `SpecialVocab`. llama.cpp also needs the name of the
pre-tokenizer (its splitting regex), which no HF file states: `pre_tokenizer_name` reads it off the
pre-tokenizer's shape.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError

# gguf.TokenType values (gguf-py/gguf/constants.py)
_NORMAL, _CONTROL, _USER_DEFINED, _UNUSED = 1, 3, 4, 5


def pre_tokenizer_name(spec: dict[str, Any]) -> str:
    """llama.cpp's name for this pre-tokenizer: digits split one by one before the GPT-2 byte-level regex is
    SmolLM's ("smollm"), the bare byte-level regex GPT-2's ("gpt-2")."""
    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [(part.get("type"), part.get("individual_digits")) for part in parts]
    if kinds == [("Digits", True), ("ByteLevel", None)]:
        return "smollm"
    if kinds == [("ByteLevel", None)]:
        return "gpt-2"
    raise LongwinError(f"no llama.cpp pre-tokenizer matches this tokenizer's {pre.get('type')} pre-tokenizer")


def add_vocab(writer: Any, folder: Path, vocab_size: int) -> None:
    """Write the tokenizer of `folder` into `writer` (a `gguf.GGUFWriter`), padded to the model's vocabulary."""
    import gguf

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise LongwinError(f"{folder} has no tokenizer.json (a fast byte-level BPE tokenizer is needed)")
    spec = json.loads(path.read_text())
    if spec.get("model", {}).get("type") != "BPE":
        raise LongwinError(f"{path}: export writes byte-level BPE tokenizers only, not {spec['model'].get('type')}")
    tokens, types = _tokens(spec, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(spec))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    quiet = logging.getLogger("gguf.vocab")  # it warns about template details llama.cpp does not read
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)
    finally:
        quiet.setLevel(level)


def _tokens(spec: dict[str, Any], vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings by id and their GGUF types; ids the tokenizer does not use become unused padding."""
    by_id = {index: (token, _NORMAL) for token, index in spec["model"]["vocab"].items()}
    for added in spec.get("added_tokens", []):
        by_id[added["id"]] = (added["content"], _CONTROL if added.get("special") else _USER_DEFINED)
    if max(by_id) >= vocab_size:
        raise LongwinError(f"the tokenizer has ids up to {max(by_id)} but the model only {vocab_size} embeddings")
    pairs = [by_id.get(i, (f"[PAD{i}]", _UNUSED)) for i in range(vocab_size)]
    return [token for token, _ in pairs], [kind for _, kind in pairs]
