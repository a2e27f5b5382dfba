"""Data-parallel and resume correctness of `longwin train` (subprocess runs on a tiny model)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
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
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1", "--master_port", _free_port(),
                 "-m", "longwin"] if nproc > 1 else [sys.executable, "-m", "longwin"])
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


def test_resume_from_checkpoint_continues_the_same_loss_curve(tiny_setup, tmp_path):  # noqa: F811
    model_dir, corpus = tiny_setup
    full, cut = tmp_path / "full", tmp_path / "cut"
    _run(_args(model_dir, corpus, full, 8, "--save-steps", "4", "--save-total-limit", "5"))
    # the state a run killed right after step 4 leaves on disk: checkpoint-4 and nothing later
    _run(_args(model_dir, corpus, cut, 8, "--save-steps", "4", "--save-total-limit", "5"))
    shutil.rmtree(cut / "checkpoint-8")
    for name in ("model.safetensors", "longwin_training.json"):
        (cut / name).unlink()
    _run(_args(model_dir, corpus, cut, 8, "--save-steps", "4", "--save-total-limit", "5",
               "--resume-from-checkpoint", str(cut / "checkpoint-4")))
    a, b = _losses(full / "checkpoint-8"), _losses(cut / "checkpoint-8")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in range(5, 9):
        assert a[step] == pytest.approx(b[step], rel=1e-5), (step, a, b)
