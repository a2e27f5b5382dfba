"""The SmolLM2 serving record (issue #34): a saved folder exported to GGUF and run by llama.cpp on exactly the
tokens a `longwin eval --task ppl` record scored in transformers (`chunks`: every token of the window;
`last-k`: its last k tokens, with the whole window as context), cell by cell.

    python experiments/serving_smollm2.py --folder F --name N --cells EVAL_OUT/cells.jsonl \
        --corpus heldout-ppl.jsonl --samples 3 --spacing 16384 --outtypes f16,q8_0 --out DIR

Each cell's window is rebuilt as the ppl task builds it (`[bos] + stream[end - L + 1 : end]`, the stream being
the corpus texts tokenized one by one with "\\n\\n" after each) and its digest compared with the cell's
`tokens_sha` before llama.cpp scores it, so a figure is only written for the very tokens transformers scored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from serving_parity import llama_cpp_nll, perplexity

from longwin.eval.haystack import iter_texts
from longwin.eval.tasks.ppl import tokens_digest
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


def main(argv: list[str]) -> int:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--folder", "--name", "--cells", "--corpus", "--out"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--spacing", type=int, default=16384)
    parser.add_argument("--outtypes", default="f16")
    parser.add_argument("--lengths", default="")
    parser.add_argument("--gguf-dir", default="/tmp/longwin-gguf")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    cells = [json.loads(line) for line in Path(args.cells).read_text().splitlines() if line.strip()]
    wanted = {int(x) for x in args.lengths.split(",") if x}
    Path(args.gguf_dir).mkdir(parents=True, exist_ok=True)
    stream = token_stream(tokenizer, args.corpus, args.samples * args.spacing)
    for outtype in args.outtypes.split(","):
        done = export_gguf(Path(args.folder), Path(args.gguf_dir) / f"{args.name}-{outtype}.gguf", outtype)
        _append(out / "exports.jsonl", {"name": args.name, "outtype": outtype, "seconds": round(done.seconds, 1),
                                        "mib": round(done.bytes / 2**20, 1)})  # fmt: skip
        for cell in cells:
            if cell.get("position") not in ("chunks", "last-k") or (wanted and cell["length"] not in wanted):
                continue
            ids = window(tokenizer, stream, args.spacing, cell["sample"], cell["length"])
            if tokens_digest(ids, cell["convention"]) != cell["tokens_sha"]:
                raise SystemExit(f"cell {cell['key']}: rebuilt tokens differ from the ones transformers scored")
            started = time.time()
            ppl = perplexity(llama_cpp_nll(done.path, ids, n_ctx=len(ids))[-cell["tokens"] :])
            row = {"name": args.name, "outtype": outtype, "length": cell["length"], "sample": cell["sample"],
                   "convention": cell["convention"],
                   "tokens_sha": cell["tokens_sha"], "ppl_transformers": round(cell["ppl"], 4),
                   "ppl_llama_cpp": round(ppl, 4), "rel_diff": round(ppl / cell["ppl"] - 1, 5),
                   "llama_cpp_seconds": round(time.time() - started, 1)}  # fmt: skip
            print(json.dumps(row), flush=True)
            _append(out / "cells.jsonl", row)
    return 0


def _append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
