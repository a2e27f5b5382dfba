"""The serving record's report (benchmarks/results/serving/README.md) from its rows: every llama.cpp perplexity
beside transformers' on the same tokens, the same comparison restricted to the tokens past the native window
(where the RoPE scaling does its work), the export times and the passkey answers. The prose is
`templates/serving.md`.

    python experiments/serving_report.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serving"
TEMPLATE = ROOT / "experiments" / "templates" / "serving.md"
NATIVE = 8192  # SmolLM2-135M's window
ROWS = {  # record folder -> what the model is
    "yarn-free": "training-free YaRN to 16K",
    "revised-yarn-free": "training-free revised YaRN to 16K (per-pair `rope_freqs`)",
    "cream-yarn": "CREAM-YaRN, the study's fine-tuned model",
    "base": "the base exported without scaling",
}


def rows(name: str, file: str = "cells.jsonl") -> list[dict[str, Any]]:
    path = RESULTS / name / file
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def transformers_cells(name: str) -> dict[str, dict[str, Any]]:
    """tokens_sha -> the transformers ppl cell that scored those tokens (any eval record of this row)."""
    found = {}
    for path in sorted((RESULTS / name).glob("*/cells.jsonl")) + sorted(
        (ROOT / "benchmarks" / "results" / "smollm2" / name).glob("*/cells.jsonl")
    ):
        for line in path.read_text().splitlines():
            cell = json.loads(line)
            if cell.get("task") == "ppl" and "tokens_sha" in cell and "token_nll" in cell:
                found[cell["tokens_sha"]] = cell
    return found


def past_native(nll: list[float], length: int, native: int) -> float | None:
    """Perplexity of the scored tokens at positions >= native in a window of `length` (scored: its last ones)."""
    first = native - (length - len(nll))
    tail = nll[max(first, 0) :]
    return math.exp(sum(tail) / len(tail)) if length > native and tail else None


def signed(percent: float) -> str:
    """A difference in % with 3 decimals and no negative zero."""
    return f"{percent:+.3f}" if round(percent, 3) else "0.000"


def ppl_table() -> str:
    from longwin.eval.tasks.ppl import decode_losses

    lines = [
        "| model | GGUF | length | sample | transformers | llama.cpp | difference | past 8K: transformers "
        "| past 8K: llama.cpp |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, what in ROWS.items():
        reference = transformers_cells(name)
        for r in sorted(rows(name), key=lambda r: (r["outtype"], r["length"], r["sample"])):
            tail = ("", "")
            if "token_nll" in r and r["tokens_sha"] in reference and r["length"] > NATIVE:
                ours, theirs = (decode_losses(c["token_nll"]).tolist() for c in (r, reference[r["tokens_sha"]]))
                tail = (
                    f"{past_native(theirs, r['length'], NATIVE):.4f}",
                    f"{past_native(ours, r['length'], NATIVE):.4f}",
                )
            lines.append(
                f"| {what} | {r['outtype'].upper()} | {r['length']:,} | {r['sample']} | {r['ppl_transformers']:.4f} "
                f"| {r['ppl_llama_cpp']:.4f} | {signed(100 * r['rel_diff'])} % | {tail[0]} | {tail[1]} |"
            )
    return "\n".join(lines)


def export_table() -> str:
    lines = ["| model | GGUF | MiB | seconds (each export) |", "|---|---|---:|---|"]
    for name, what in ROWS.items():
        by_type: dict[str, list[dict[str, Any]]] = {}
        for r in rows(name, "exports.jsonl"):
            by_type.setdefault(r["outtype"], []).append(r)
        for outtype, runs in by_type.items():
            seconds = ", ".join(f"{r['seconds']:.1f}" for r in runs)
            lines.append(f"| {what} | {outtype.upper()} | {runs[0]['mib']:.1f} | {seconds} |")
    return "\n".join(lines)


def passkey_lines() -> str:
    found = []
    for name, what in ROWS.items():
        for r in rows(name, "passkey.jsonl"):
            verdict = "found" if r["llama_cpp_score"] == 1 else "missed"
            found.append(
                f"- {what}, `{r['key']}` ({r['prompt_tokens']:,} tokens; key {r['answer']}): llama.cpp "
                f"{json.dumps(r['llama_cpp_output'])} ({verdict}), transformers "
                f"{json.dumps(r['transformers_output'])}; {r['seconds']:.0f} s in llama.cpp."
            )
    return "\n".join(found) if found else "None run."


def main() -> int:
    from longwin.studies.render import fill

    text = fill(TEMPLATE, ppl_table=ppl_table(), export_table=export_table(), passkey=passkey_lines())
    (RESULTS / "README.md").write_text(text)
    print(f"serving_report: wrote {RESULTS / 'README.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
