"""Run a plan's jobs inside a hard deadline and pack every record as soon as it exists.

A GPU lease here is short (15 minutes a session, 10 a command) and a command killed at its limit returns
only what it left under $OUT. So: every job is a subprocess with its own log; a job starts when the jobs it
needs have succeeded and its lane is free (training jobs share one lane: one GPU); at most `parallel` jobs
run at once; every job is killed at the deadline; and after each job ends the records are packed again
(written to a temporary name, then renamed), with a status file that says what ran, failed or never started.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    """One command of the plan: `after` must succeed first; jobs of one `lane` never overlap."""

    name: str
    argv: list[str]
    after: tuple[str, ...] = ()
    lane: str = ""
    state: str = "waiting"  # waiting, running, done, failed, killed, skipped
    seconds: float = 0.0
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started: float = 0.0


def _ready(job: Job, jobs: dict[str, Job], running: list[Job]) -> bool:
    if any(jobs[a].state != "done" for a in job.after):
        return False
    return not (job.lane and any(r.lane == job.lane for r in running))


def _blocked(job: Job, jobs: dict[str, Job]) -> bool:
    return any(jobs[a].state in ("failed", "killed", "skipped") for a in job.after)


def run_jobs(
    jobs: list[Job],
    *,
    deadline: float,
    parallel: int,
    logs: Path,
    env: dict[str, str],
    on_change: Callable[[list[Job]], None],
    say: Callable[[str], None] = print,
) -> list[Job]:
    """Run `jobs` (in list order when several are ready) until all ended or `deadline` (time.monotonic)."""
    by_name = {j.name: j for j in jobs}
    logs.mkdir(parents=True, exist_ok=True)
    running: list[Job] = []
    while True:
        for job in jobs:
            if job.state == "waiting" and _blocked(job, by_name):
                job.state = "skipped"
                say(f"skip {job.name}: a job it needs did not succeed")
        for job in jobs:
            if job.state == "waiting" and len(running) < parallel and _ready(job, by_name, running):
                log = (logs / f"{job.name}.log").open("w")
                job.proc = subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
                job.state, job.started = "running", time.monotonic()
                running.append(job)
                say(f"start {job.name}")
        if not running:
            break
        time.sleep(0.2)
        late = time.monotonic() > deadline
        for job in list(running):
            assert job.proc is not None
            if late:
                job.proc.kill()
            code = job.proc.poll() if not late else job.proc.wait()
            if code is None:
                continue
            job.seconds = round(time.monotonic() - job.started, 1)
            job.state = "killed" if late else ("done" if code == 0 else "failed")
            running.remove(job)
            say(f"{job.state} {job.name} ({job.seconds} s)")
            on_change(jobs)
        if late:
            for job in jobs:
                if job.state == "waiting":
                    job.state = "skipped"
            break
    on_change(jobs)
    return jobs


def status(jobs: list[Job]) -> dict[str, dict[str, object]]:
    return {j.name: {"state": j.state, "seconds": j.seconds, "command": " ".join(j.argv)} for j in jobs}


def pack(work: Path, out: Path, names: list[str], extra: dict[str, object]) -> Path:
    """`out/gpu_plan.tgz` holding `names` under `work` (those that exist), plus `out/status.json` (`extra`)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".gpu_plan.tgz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for name in names:
            for path in sorted(work.glob(name)):
                tar.add(path, arcname=str(path.relative_to(work)))
    os.replace(tmp, out / "gpu_plan.tgz")
    (out / ".status.tmp").write_text(json.dumps(extra, indent=2, default=str) + "\n")
    os.replace(out / ".status.tmp", out / "status.json")
    return out / "gpu_plan.tgz"
