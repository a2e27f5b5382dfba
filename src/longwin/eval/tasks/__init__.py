"""The task registry: names accepted by `--task` and the classes behind them."""

from __future__ import annotations

from longwin.errors import LongwinError
from longwin.eval.options import EvalOptions
from longwin.eval.tasks.base import Task
from longwin.eval.tasks.copy import CopyTask
from longwin.eval.tasks.kv_retrieval import KvRetrievalTask
from longwin.eval.tasks.lines import LinesTask
from longwin.eval.tasks.longbench import LongBenchTask
from longwin.eval.tasks.needle import NeedleTask
from longwin.eval.tasks.passkey import PasskeyTask
from longwin.eval.tasks.ppl import PerplexityTask
from longwin.eval.tasks.ruler import RulerTask

# bump when a generator changes what it produces: recorded in results and in cell fingerprints
GENERATOR_VERSION = 1

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (PasskeyTask, NeedleTask, KvRetrievalTask, LinesTask, RulerTask, PerplexityTask, LongBenchTask, CopyTask)
}


def make_task(name: str, options: EvalOptions, seed: int) -> Task:
    if name not in TASKS:
        raise LongwinError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name](options, seed)
