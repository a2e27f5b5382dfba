"""Passkey through llama.cpp's own generation (issue #34): the prompts of a committed `longwin eval --task
passkey` record rebuilt (checked against each cell's `prompt_sha`), generated greedily by llama.cpp from an
exported GGUF, scored as the task scores them, beside the output transformers gave in the record.

    python experiments/serving_passkey.py --gguf G --folder F --cells RECORD/cells.jsonl --keys KEY,... --out FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from serving_parity import llama_cpp_module

from longwin.eval.options import EvalOptions
from longwin.eval.prompting import PromptFormatter
from longwin.eval.tasks.base import Cell
from longwin.eval.tasks.passkey import PasskeyTask


def generate(gguf: Path, ids: list[int], new_tokens: int, eos: int | None) -> list[int]:
    """Greedy continuation by llama.cpp (2 threads, default f16 KV cache)."""
    module = llama_cpp_module()
    if module is None:
        raise SystemExit("llama-cpp-python is not installed (see docs/serving.md)")
    llama = module.Llama(
        model_path=str(gguf), n_ctx=len(ids) + new_tokens, n_batch=512, n_threads=2, n_threads_batch=2, verbose=False
    )
    out: list[int] = []
    for token in llama.generate(ids, top_k=1, temp=0.0, reset=True):
        if token == eos or len(out) == new_tokens:
            break
        out.append(token)
    llama.close()
    return out


def main(argv: list[str]) -> int:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--gguf", "--folder", "--cells", "--keys", "--out"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    task = PasskeyTask(EvalOptions(samples=2), seed=0)
    fmt = PromptFormatter(tokenizer, False)
    cells = {c["key"]: c for c in map(json.loads, Path(args.cells).read_text().splitlines())}
    for key in args.keys.split(","):
        cell = cells[key]
        sample = task.build(Cell("passkey", cell["length"], cell["position"], cell["sample"]), fmt)
        if hashlib.sha256(sample.text.encode()).hexdigest()[:16] != cell["prompt_sha"]:
            raise SystemExit(f"{key}: the rebuilt prompt differs from the record's")
        started = time.time()
        new = generate(Path(args.gguf), sample.prompt.ids, sample.max_new_tokens, tokenizer.eos_token_id)
        output = str(tokenizer.decode(new))
        row = {"key": key, "answer": cell["answer"], "llama_cpp_output": output,
               "llama_cpp_score": task.score(sample, output)["score"], "transformers_output": cell["output"],
               "transformers_score": cell["score"], "prompt_tokens": len(sample.prompt.ids),
               "seconds": round(time.time() - started, 1)}  # fmt: skip
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
