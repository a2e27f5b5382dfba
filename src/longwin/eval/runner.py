"""`evaluate()`: run tasks over a length grid, appending each finished cell, then write results.

Cells already in the output folder's cells.jsonl (same fingerprint: task settings, seed and the
model's identity, a digest of its weights and config, never its path) are skipped, so an interrupted
run picks up where it stopped and a model retrained into the same folder is evaluated anew. Prompts
are built only for cells still to run. One process writes a folder at a time.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from longwin.errors import LongwinError
from longwin.eval.adapters import resolve_model
from longwin.eval.contamination import training_text_warnings
from longwin.eval.model import EvalModel, check_fits
from longwin.eval.options import EvalOptions, make_options
from longwin.eval.prompting import PromptFormatter
from longwin.eval.results import RESULTS_CSV, RESULTS_JSON, write_csv, write_json
from longwin.eval.store import CellStore
from longwin.eval.tasks import GENERATOR_VERSION, make_task
from longwin.eval.tasks.base import Cell, GenerationTask, NllTask, Sample, Task
from longwin.outputs import check_writable_folder, exclusive


def evaluate(
    model: Any,
    tasks: str | Sequence[str],
    lengths: Sequence[int] | str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    tokenizer: Any = None,
    name: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate `model` on `tasks` at each prompt length; write results into `out_dir` and return them.

    `model`: a reference for `longwin.models.load_model` ("toy", a folder, a .gguf), a (model,
    tokenizer) pair, a model with `tokenizer=`, or any `EvalModel`; `name` labels it in the results
    (default: the reference or the model's own name). `options`: see `EvalOptions`.
    """
    opts = make_options(options)
    task_objs, grid = check_request(tasks, lengths, opts, seed)  # bad input fails before loading
    out = check_writable_folder(out_dir, "--out")
    if isinstance(model, (str, Path)):
        warn_training_text(model, task_objs)
    runner = _Run(resolve_model(model, tokenizer, name), opts, seed, out)
    for task in task_objs:
        runner.check_positions(task, grid)
    runner.check_memory(grid, needs_cache(task_objs))
    with exclusive(out, "longwin eval"):
        return runner.run(task_objs, grid)


def warn_training_text(model_ref: str | Path, tasks: Sequence[Task]) -> None:
    """Say (on stderr, before anything runs) which task reads the model's own training text."""
    for line in training_text_warnings(model_ref, tasks):
        print(f"longwin eval: warning: {line}", file=sys.stderr)


def needs_cache(tasks: Sequence[Task]) -> bool:
    """Whether any task generates (and so holds a KV cache of every layer); perplexity alone does not."""
    return any(task.kind != "nll" for task in tasks)


def check_request(
    tasks: str | Sequence[str], lengths: Sequence[int] | str, options: EvalOptions, seed: int
) -> tuple[list[Task], list[int]]:
    """The task objects and the length grid, failing in one line on bad input (before any model loads)."""
    grid = _lengths(lengths)
    return [make_task(name, options, seed) for name in _task_names(tasks)], grid


def _task_names(tasks: str | Sequence[str]) -> list[str]:
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    if not names:
        raise LongwinError("no task given (e.g. --task passkey,kv-retrieval)")
    return list(dict.fromkeys(names))


def _lengths(lengths: Sequence[int] | str) -> list[int]:
    try:
        grid = [int(n) for n in (lengths.split(",") if isinstance(lengths, str) else lengths)]
    except ValueError:
        raise LongwinError(f"lengths must be integers, got {lengths!r}") from None
    if not grid:
        raise LongwinError("no lengths given (e.g. --lengths 1024,2048,4096)")
    if min(grid) <= 0:
        raise LongwinError(f"lengths must be positive, got {min(grid)}")
    return sorted(set(grid))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Run:
    def __init__(self, model: EvalModel, options: EvalOptions, seed: int, out_dir: Path) -> None:
        self.model = model
        self.options = options
        self.seed = seed
        self.out_dir = out_dir
        self.fmt = PromptFormatter(model.tokenizer, options.chat_template)

    def check_positions(self, task: Task, lengths: list[int]) -> None:
        """Learned absolute positions cannot go past their table; RoPE models run on, flagged."""
        limit = self.model.position_limit
        need = max(lengths) + task.max_new_tokens
        if limit is not None and need > limit:
            raise LongwinError(
                f"{task.name}: length {max(lengths)} + {task.max_new_tokens} new tokens needs {need} "
                f"positions but {self.model.name} has only {limit} learned position embeddings"
            )

    def check_memory(self, lengths: list[int], cache: bool) -> None:
        device = getattr(self.model, "device", torch.device("cpu"))
        opts = self.options
        check_fits(self.model.memory_needed, lengths, opts.batch_size, opts.batch_tokens, device, cache)

    def fingerprint(self, task: Task) -> str:
        identity = {
            "task": task.name,
            "settings": task.settings,
            "seed": self.seed,
            "model": self.model.identity,
            "chat_template": self.options.chat_template,
            "generator": GENERATOR_VERSION,
        }
        return _sha(json.dumps(identity, sort_keys=True, default=str))

    def run(self, tasks: list[Task], lengths: list[int]) -> dict[str, Any]:
        self.store = CellStore(self.out_dir)
        plan = [(task, task.cells(lengths), self.fingerprint(task)) for task in tasks]
        pending = {task.name: [c for c in cells if self.store.get(c.key, fp) is None] for task, cells, fp in plan}
        reused = sum(len(cells) for _, cells, _ in plan) - sum(map(len, pending.values()))
        if reused:
            print(
                f"longwin eval: reusing {reused} finished cell(s) of this model and these settings from "
                f"{self.store.path} ({sum(map(len, pending.values()))} to compute)",
                file=sys.stderr,
            )
        from tqdm.auto import tqdm

        with tqdm(
            total=sum(map(len, pending.values())), desc="eval", unit="cell", disable=not self.options.progress
        ) as bar:
            for task, _, fp in plan:
                if isinstance(task, GenerationTask):
                    self._generate(task, pending[task.name], fp, bar)
                elif isinstance(task, NllTask):
                    self._measure(task, pending[task.name], fp, bar)
        return self._write(plan, lengths)

    def _row(self, task: Task, cell: Cell, fp: str, fields: dict[str, Any]) -> dict[str, Any]:
        identity = {
            "task": task.name,
            "key": cell.key,
            "length": cell.length,
            "position": cell.position,
            "sample": cell.sample,
            "fingerprint": fp,
        }
        return {**identity, **fields, **identity}  # identity first in column order, never overwritten

    def _generate(self, task: GenerationTask, cells: list[Cell], fp: str, bar: Any) -> None:
        batch: list[tuple[Cell, Sample]] = []
        for cell in cells:
            sample = task.build(cell, self.fmt)
            if batch and not self._fits(batch, cell, sample):
                self._flush(task, batch, fp, bar)
                batch = []
            batch.append((cell, sample))
        if batch:
            self._flush(task, batch, fp, bar)

    def _fits(self, batch: list[tuple[Cell, Sample]], cell: Cell, sample: Sample) -> bool:
        first_cell, first = batch[0]
        widest = max(len(sample.prompt.ids), *(len(s.prompt.ids) for _, s in batch))
        return (
            len(batch) < self.options.batch_size
            and cell.length == first_cell.length
            and sample.max_new_tokens == first.max_new_tokens
            and (len(batch) + 1) * widest <= self.options.batch_tokens
        )

    def _flush(self, task: GenerationTask, batch: list[tuple[Cell, Sample]], fp: str, bar: Any) -> None:
        bar.set_postfix_str(f"{task.name} @ {batch[0][0].length}")
        start = time.perf_counter()
        outputs = self.model.generate([s.prompt for _, s in batch], batch[0][1].max_new_tokens)
        seconds = round((time.perf_counter() - start) / len(batch), 4)
        for (cell, sample), ids in zip(batch, outputs):
            output = self.model.tokenizer.decode(ids, skip_special_tokens=True)
            tokens = len(sample.prompt.ids)
            row = self._row(
                task,
                cell,
                fp,
                {
                    "prompt_tokens": tokens,
                    "context_tokens": sample.prompt.context_end,
                    "exceeds_window": bool(self.model.window and tokens > self.model.window),
                    **task.score(sample, output),
                    "answer": sample.answer,
                    "output": output,
                    **sample.info,
                    "prompt_sha": _sha(sample.text),
                    "seconds": seconds,
                },
            )
            self.store.add(row)
            if self.options.save_prompts:
                with (self.out_dir / "prompts.jsonl").open("a", encoding="utf-8") as f:
                    f.write(
                        json.dumps({"key": cell.key, "fingerprint": fp, "prompt": sample.text}, ensure_ascii=False)
                        + "\n"
                    )
            bar.update(1)

    def _measure(self, task: NllTask, cells: list[Cell], fp: str, bar: Any) -> None:
        for cell in cells:
            bar.set_postfix_str(f"{task.name} @ {cell.length}")
            start = time.perf_counter()
            fields = task.measure(cell, self.model)
            window_tokens = fields["window_tokens"]
            self.store.add(
                self._row(
                    task,
                    cell,
                    fp,
                    {
                        **fields,
                        "exceeds_window": bool(self.model.window and window_tokens > self.model.window),
                        "seconds": round(time.perf_counter() - start, 4),
                    },
                )
            )
            bar.update(1)

    def _write(self, plan: list[tuple[Task, list[Cell], str]], lengths: list[int]) -> dict[str, Any]:
        results: dict[str, Any] = {
            "model": self.model.name,
            "seed": self.seed,
            "lengths": lengths,
            "window": self.model.window,
            "position_limit": self.model.position_limit,
            "generator_version": GENERATOR_VERSION,
            "options": asdict(self.options),
            "tasks": {},
        }
        all_rows: list[dict[str, Any]] = []
        for task, cells, fp in plan:
            stored = [self.store.get(c.key, fp) for c in cells]
            rows = [r for r in stored if r is not None]
            summary = task.summarize(rows)
            summary["cells"] = len(rows)
            summary["exceeds_window"] = sum(bool(r.get("exceeds_window")) for r in rows)
            summary["settings"] = task.settings
            summary["plots"] = task.plots(summary, rows, self.out_dir, self.model.window) if rows else []
            results["tasks"][task.name] = summary
            all_rows.extend(rows)
        write_json(self.out_dir / RESULTS_JSON, results)
        write_csv(self.out_dir / RESULTS_CSV, all_rows)
        return results
