"""The SmolLM2 serving record (issue #34): a saved folder exported to GGUF and run by llama.cpp on exactly the
tokens a `longwin eval --task ppl` record scored in transformers (`chunks`: every token of the window;
`last-k`: its last k tokens, with the whole window as context), cell by cell.

    python experiments/serving_smollm2.py --folder F --name N --cells EVAL_OUT/cells.jsonl \
        --corpus heldout-ppl.jsonl --samples 3 --spacing 16384 --outtypes f16,q8_0 --out DIR

With `--free-rope R --target-length L`, `--folder` is a model reference instead (e.g. `smollm2-135m`): the
training-free row `longwin eval --rope R --target-length L` scores, saved as a folder first (`--free-rope none`:
the base exactly as it loads, no scaling). The transformers cells must come from that same eval row.

Each cell's window is rebuilt as the ppl task builds it (`[bos] + stream[end - L + 1 : end]`, the stream being
the corpus texts tokenized one by one with "\\n\\n" after each) and its digest compared with the cell's
`tokens_sha` before llama.cpp scores it, so a figure is only written for the very tokens transformers scored.
Each row keeps llama.cpp's per-token losses (`token_nll`, as the ppl task writes its own), so a part of the
window (e.g. the tokens past the native window) can be compared between the engines afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from serving_parity import llama_cpp_nll, perplexity

from longwin.eval.haystack import iter_texts
from longwin.eval.tasks.ppl import encode_losses, tokens_digest
from longwin.serving.export import export_gguf


def token_stream(tokenizer, corpus: str, need: int) -> list[int]:
    """The ppl task's stream: corpus texts tokenized one by one, each followed by a blank line."""
    stream: list[int] = []
    for text in iter_texts(corpus):
        stream.extend(tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"])
        if len(stream) >= need:
            break
    return stream


def window(tokenizer, stream: list[int], spacing: int, sample: int, length: int) -> list[int]:
    """The window of `length` tokens (BOS first) ending at stream offset (sample + 1) x spacing."""
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    end, body = (sample + 1) * spacing, length - len(head)
    return head + stream[end - body : end]


def score_cell(gguf: Path, ids: list[int], cell: dict, threads: int = 2) -> dict:
    """llama.cpp's perplexity on the very tokens a transformers cell scored, beside that cell's figure."""
    if tokens_digest(ids, cell["convention"]) != cell["tokens_sha"]:
        raise SystemExit(f"cell {cell['key']}: rebuilt tokens differ from the ones transformers scored")
    started = time.time()
    nll = llama_cpp_nll(gguf, ids, n_ctx=len(ids), threads=threads)[-cell["tokens"] :]
    ppl = perplexity(nll)
    return {"length": cell["length"], "sample": cell["sample"], "convention": cell["convention"],
            "tokens_sha": cell["tokens_sha"], "ppl_transformers": round(cell["ppl"], 4),
            "ppl_llama_cpp": round(ppl, 4), "rel_diff": round(ppl / cell["ppl"] - 1, 5),
            "llama_cpp_seconds": round(time.time() - started, 1), "threads": threads,
            "token_nll": encode_losses(torch.from_numpy(nll))}  # fmt: skip


def free_folder(ref: str, rope: str, target_length: int, out: Path) -> Path:
    """The training-free row `longwin eval --model ref --rope rope --target-length L` loads, saved as a folder."""
    from longwin.eval.loading import load_for_eval

    if not (out / "config.json").is_file():
        scaled = rope != "none"
        model, tokenizer = load_for_eval(
            ref,
            device="cpu",
            dtype="float32",
            rope=rope if scaled else "",
            target_length=target_length if scaled else 0,
        )
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out


def main(argv: list[str]) -> int:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--folder", "--name", "--cells", "--corpus", "--out"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--spacing", type=int, default=16384)
    parser.add_argument("--outtypes", default="f16")
    parser.add_argument("--lengths", default="")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--keys", default="", help="only these cell keys (comma-separated)")
    parser.add_argument("--gguf-dir", default="/tmp/longwin-gguf")
    parser.add_argument("--free-rope", default="", help="save this training-free row of --folder first")
    parser.add_argument("--target-length", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(args.gguf_dir).mkdir(parents=True, exist_ok=True)
    if args.free_rope:
        target = Path(args.gguf_dir) / f"{args.name}-folder"
        args.folder = str(free_folder(args.folder, args.free_rope, args.target_length, target))
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    cells = [json.loads(line) for line in Path(args.cells).read_text().splitlines() if line.strip()]
    wanted, keys = {int(x) for x in args.lengths.split(",") if x}, {k for k in args.keys.split(",") if k}
    cells = [c for c in cells if c.get("position") in ("chunks", "last-k")]
    cells = [c for c in cells if (not wanted or c["length"] in wanted) and (not keys or c["key"] in keys)]
    stream = token_stream(tokenizer, args.corpus, args.samples * args.spacing)
    for outtype in args.outtypes.split(","):
        done = export_gguf(Path(args.folder), Path(args.gguf_dir) / f"{args.name}-{outtype}.gguf", outtype)
        _append(out / "exports.jsonl", {"name": args.name, "outtype": outtype, "seconds": round(done.seconds, 1),
                                        "mib": round(done.bytes / 2**20, 1)})  # fmt: skip
        for cell in cells:
            ids = window(tokenizer, stream, args.spacing, cell["sample"], cell["length"])
            row = {"name": args.name, "outtype": outtype, **score_cell(done.path, ids, cell, args.threads)}
            print(json.dumps({k: v for k, v in row.items() if k != "token_nll"}), flush=True)
            _append(out / "cells.jsonl", row)
    return 0


def _append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
