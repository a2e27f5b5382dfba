"""The SmolLM2 serving record (issue #34): a saved folder exported to GGUF and run by llama.cpp on exactly the
tokens `longwin eval --task ppl --conventions chunks` scored in transformers, cell by cell.

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


def windows(tokenizer, corpus: str, samples: int, spacing: int, length: int) -> list[list[int]]:
    """The ppl task's `chunks` window of `length` tokens for each sample."""
    stream: list[int] = []
    for text in iter_texts(corpus):
        stream.extend(tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"])
        if len(stream) >= samples * spacing:
            break
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    body = length - len(head)
    return [head + stream[(i + 1) * spacing - body : (i + 1) * spacing] for i in range(samples)]


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
    for outtype in args.outtypes.split(","):
        done = export_gguf(Path(args.folder), Path(args.gguf_dir) / f"{args.name}-{outtype}.gguf", outtype)
        _append(out / "exports.jsonl", {"name": args.name, "outtype": outtype, "seconds": round(done.seconds, 1),
                                        "mib": round(done.bytes / 2**20, 1)})  # fmt: skip
        for cell in cells:
            if cell.get("position") != "chunks" or (wanted and cell["length"] not in wanted):
                continue
            window = windows(tokenizer, args.corpus, args.samples, args.spacing, cell["length"])[cell["sample"]]
            if tokens_digest(window, cell["convention"]) != cell["tokens_sha"]:
                raise SystemExit(f"cell {cell['key']}: rebuilt tokens differ from the ones transformers scored")
            started = time.time()
            ppl = perplexity(llama_cpp_nll(done.path, window, n_ctx=len(window)))
            row = {"name": args.name, "outtype": outtype, "length": cell["length"], "sample": cell["sample"],
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
