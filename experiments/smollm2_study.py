"""SmolLM2-135M, 8K -> 16K on this CPU: CREAM and its baselines at one budget, with retention rows.

Every model is evaluated on the same held-out text and prompts:

- perplexity (`last-k`: loss on the last 1,024 tokens of a window of 2K, 8K or 16K tokens) on the first
  16K tokens of each of the longest held-out documents (documents never trained on);
- passkey by depth at 2K, 8K and 16K (the format appears nowhere in the training text);
- content copy by depth at 2K, 8K and 16K, its span planted in the held-out documents (`heldout_haystack`).

Methods (same data, steps, learning rate and seed for every fine-tuned one; natural text only):
the base; training-free PI (linear), NTK, dynamic NTK, YaRN and revised YaRN; CREAM and PoSE with YaRN
and with linear interpolation; contiguous fine-tuning (`scheme none`) with PI and with YaRN; CREAM-YaRN with
positional self-distillation from the base (`--distill-weight 100`, the toy recipe's fix for the content
copying fine-tuning erases there); YaRN with its attention temperature off, training-free and under CREAM.
Fine-tuning runs at 1,024 tokens a window (the CPU budget), positions spanning 16,384 (CREAM, PoSE).

The work is a list of stages in priority order. Each stage is resumable on its own (an evaluation reuses
its finished cells, a training resumes from its newest complete checkpoint) and skipped once done, so
rerunning the script continues where it stopped. Raw evaluation records go to
benchmarks/results/smollm2/<model>/ (commit them as they finish); models go under --work.

    python experiments/smollm2_study.py                 # every stage, in order (many hours on 2 cores)
    python experiments/smollm2_study.py --stages ppl:base,ppl:yarn-free
    python experiments/smollm2_study.py --list          # stages and whether each is done
    python experiments/smollm2_study.py --report        # writes docs/results-smollm2.md from the records
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smollm2_plan import (
    DATA,
    HAYSTACK_SKIP,
    KEY_DOCS,
    MODEL,
    OOD_DATA,
    PPL_DOCS,
    RECIPE,
    RESULTS,
    ROOT,
    ROWS,
    SHORT_CONTEXT,
    STAGES,
    TARGET,
    done,
    stage_lengths,
)
from smollm2_report import report

from longwin.studies.stages import Study, run_longwin
from longwin.studies.stages import main as study_main

BY_DEPTH = ["--samples", "2", "--depths", "0,25,50,75,100"]  # passkey and copy: 10 cells per length
COMMON = ["--dtype", "float32", "--attn-implementation", "sdpa", "--batch-size", "1", "--progress", "false"]


def split_data() -> tuple[list[Any], list[Any]]:
    """(training, held-out) documents: `longwin train`'s own split of DATA (val_fraction 0.1, seed 0, by id)."""
    from longwin.data.corpora import load_documents, split_documents

    return split_documents(load_documents(DATA), 0.1, seed=0)


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    from longwin.models import model_path

    return AutoTokenizer.from_pretrained(model_path(MODEL))


def _jsonl(path: Path, rows: Callable[[], list[dict[str, str]]]) -> Path:
    """`path`, written once (atomically) from `rows()` as JSONL; an existing file is the study's text and kept."""
    if not path.is_file():
        from longwin.outputs import write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows()))
    return path


def heldout_corpus(work: Path) -> Path:
    """The PPL_DOCS longest held-out documents cut to TARGET tokens, one after another, so that sample i of
    the perplexity task is document i."""
    from longwin.data.heldout import heldout_rows

    return _jsonl(work / "heldout-ppl.jsonl", lambda: heldout_rows(split_data()[1], _tokenizer(), TARGET, PPL_DOCS))


def heldout_haystack(work: Path) -> Path:
    """The held-out prose documents whole (HAYSTACK_SKIP left out), in the split's order: the copy task's
    haystack, so that no prompt carries text a fine-tuned row was trained on (the default haystack, the essays,
    is in DATA)."""
    from longwin.data.heldout import whole_rows

    def prose() -> list[dict[str, str]]:
        return whole_rows([d for d in split_data()[1] if not d.id.startswith(HAYSTACK_SKIP)])

    return _jsonl(work / "heldout-haystack.jsonl", prose)


def ood_corpus(work: Path) -> Path:
    """The out-of-domain text: the PPL_DOCS longest OOD_DATA documents cut to TARGET tokens (none trained on)."""
    from longwin.data.corpora import load_documents
    from longwin.data.heldout import heldout_rows

    return _jsonl(
        work / "ood-ppl.jsonl", lambda: heldout_rows(load_documents(OOD_DATA), _tokenizer(), TARGET, PPL_DOCS)
    )


def model_ref(name: str, work: Path) -> list[str]:
    """`longwin eval` flags that load row `name` (training it first when needed)."""
    row = ROWS[name]
    if not row.trained:
        return row.eval_flags(MODEL, TARGET)
    folder = work / "models" / name
    if not (folder / "longwin_training.json").is_file():
        resume = (
            ["--resume-from-checkpoint", "true"]
            if any(folder.glob("checkpoint-*"))
            else ["--overwrite-output-dir", "true"]
        )
        run_longwin(["train", "--config", RECIPE, *row.train_flags(), "--output-dir", str(folder), *resume], ROOT)
    return row.eval_flags(str(folder), TARGET)


def run_stage(stage: str, work: Path) -> None:
    task, name = stage.split(":")
    ref = model_ref(name, work)
    out = RESULTS / name / task
    common = ["--lengths", ",".join(map(str, stage_lengths(stage))), *COMMON, "--seed", "0"]
    if task in ("ppl", "oodppl"):
        text = heldout_corpus(work) if task == "ppl" else ood_corpus(work)
        args = ["--task", "ppl", "--corpus", str(text), "--conventions", "last-k"]
        args += ["--last-k", "1024", "--samples", str(PPL_DOCS), "--sample-spacing", str(TARGET)]  # document i
    elif task == "keyppl":  # every token, with the whole window and with a short one: key tokens (LongPPL)
        args = ["--task", "ppl", "--corpus", str(heldout_corpus(work)), "--conventions", "chunks,short"]
        args += ["--short-context", str(SHORT_CONTEXT), "--samples", str(KEY_DOCS), "--sample-spacing", str(TARGET)]
    else:
        args = ["--task", task, *BY_DEPTH] + (["--haystack", str(heldout_haystack(work))] if task == "copy" else [])
    run_longwin(["eval", *ref, *args, *common, "--out", str(out)], ROOT)
    card = work / "models" / name / "longwin_training.json"
    if card.is_file():  # the card of the model this record evaluated (losses, steps, time), beside the record
        keep = {k: v for k, v in json.loads(card.read_text()).items() if k not in ("extend_config",)}
        (out / "training.json").write_text(json.dumps(keep, indent=2, default=str) + "\n")


STUDY = Study(
    doc=__doc__ or "",
    stages=STAGES,
    done=done,
    run=run_stage,
    report=report,
    report_path=ROOT / "docs" / "results-smollm2.md",
    default_work="out/smollm2_study",
)


if __name__ == "__main__":
    sys.exit(study_main(STUDY))
