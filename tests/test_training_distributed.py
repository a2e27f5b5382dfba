"""Data-parallel and resume correctness of `longwin train` (subprocess runs on a tiny model)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_training import _train_args


def _losses(checkpoint: Path) -> dict[int, float]:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: h["loss"] for h in history if "loss" in h}


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _run(args: list[str], *, nproc: int = 1) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            _free_port(),
            "-m",
            "longwin",
        ]
        if nproc > 1
        else [sys.executable, "-m", "longwin"]
    )
    done = subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]


def _args(model_dir, corpus, out, steps, *extra):
    args = _train_args(model_dir, corpus, out, "--logging-steps", "1", "--save-steps", str(steps), *extra)
    args[args.index("--max-steps") + 1] = str(steps)
    return args


def test_two_process_gloo_equals_one_process_with_same_global_batch(tiny_setup, tmp_path):  # noqa: F811
    model_dir, corpus = tiny_setup
    one, two = tmp_path / "one", tmp_path / "two"
    base = _args(model_dir, corpus, one, 4)
    base[base.index("--per-device-train-batch-size") + 1] = "4"
    _run(base)
    dp = _args(model_dir, corpus, two, 4)  # 2 processes x 2 = global batch 4
    _run(dp, nproc=2)
    a, b = _losses(one / "checkpoint-4"), _losses(two / "checkpoint-4")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-4), (step, a, b)


def test_resume_after_the_process_is_killed_continues_the_same_loss_curve(tiny_setup, tmp_path):  # noqa: F811
    model_dir, corpus = tiny_setup
    full, cut = tmp_path / "full", tmp_path / "cut"
    steps = ["--save-steps", "4", "--save-total-limit", "20"]
    _run(_args(model_dir, corpus, full, 40, *steps))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "longwin", *_args(model_dir, corpus, cut, 40, *steps)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (cut / "checkpoint-4" / "trainer_state.json").is_file() and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no chance to save anything more
    proc.wait()
    assert not (cut / "model.safetensors").is_file(), "the run finished before it could be killed"
    done = [c for c in cut.glob("checkpoint-*") if (c / "trainer_state.json").is_file()]
    resume = max(done, key=lambda c: int(c.name.split("-")[1]))
    _run(_args(model_dir, corpus, cut, 40, *steps, "--resume-from-checkpoint", str(resume)))
    a, b = _losses(full / "checkpoint-40"), _losses(cut / "checkpoint-40")
    start = int(resume.name.split("-")[1])
    assert sorted(a) == sorted(b) == list(range(1, 41))
    for step in range(start + 1, 41):
        assert a[step] == pytest.approx(b[step], rel=1e-5), (step, a, b)
