"""`longwin demo`: the main job end to end on the toy model (tiny sizes), resume, and bad input."""

from __future__ import annotations

import json

import pytest

from longwin.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_trains_evaluates_reports_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "demo",
        "--out",
        str(out),
        "--methods",
        "pi,yarn-free,sharedllm",
        "--max-steps",
        "2",
        "--lengths",
        "256,512",
        "--tasks",
        "passkey,ppl",
        "--samples",
        "1",
    ]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert "| task | series | length | base | pi | yarn-free | sharedllm |" in report
    assert "lr 3e-05, positional self-distillation weight 100" in report  # the toy recipe's, named in the report
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"base", "pi", "yarn-free", "sharedllm"}
    assert set(results["training"]) == {"pi", "sharedllm"}
    assert (out / "models" / "pi" / "model.safetensors").is_file()
    assert "about" in capsys.readouterr().err  # the time-left estimate
    assert main(argv) == 0  # resumes: models and cells are reused
    assert "already trained" in capsys.readouterr().err


def test_unknown_demo_method_is_a_one_line_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--methods", "cream,magic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown demo method(s) magic" in err[0]


def test_every_retrieval_kind_marks_the_task_it_teaches():
    """A kind missing from TASK_OF_KIND would let a trained-on task pass as evidence of extension."""
    from longwin.data.retrieval_docs import KINDS
    from longwin.studies.comparison import TASK_OF_KIND, trained_on

    assert set(TASK_OF_KIND) == set(KINDS)
    card = {"extend_config": {"retrieval_fraction": 0.25, "retrieval_kinds": ["copy_random"]}}
    assert trained_on(card, ["passkey", "copy", "ppl"]) == ["copy"]
    assert trained_on({"extend_config": {"retrieval_fraction": 0.0, "retrieval_kinds": list(KINDS)}}, ["copy"]) == []


def test_verdicts_compare_with_free_yarn_and_the_base_leaving_trained_on_tasks_out():
    from longwin.studies.comparison import verdicts

    def run(copy256, copy2048, ppl256, ppl2048):
        series = {"copy": {"acc": {"256": copy256, "2048": copy2048}}, "ppl": {"x": {"256": ppl256, "2048": ppl2048}}}
        return {"tasks": {task: {"series": s} for task, s in series.items()}}

    results = {
        "base": run(95.0, 0.0, 60.0, 600.0),
        "yarn-free": run(90.0, 70.0, 63.0, 70.0),
        "cream": run(5.0, 2.0, 59.0, 65.0),
    }
    lines = verdicts(results, {"cream": []}, 256, 2048)
    assert lines[0] == "- `cream` at 2048 tokens beats training-free YaRN on ppl 65.0 vs 70.0; not on copy 2.0 vs 70.0."
    assert lines[1].startswith("- `cream` inside the native window (256) against the base: loses copy 5.0 vs 95.0")
    trained = verdicts(results, {"cream": ["ppl"]}, 256, 2048)
    assert "no task it was not trained on; not on copy" in trained[0]


def test_default_demo_plan_fits_the_ten_minute_budget():
    """The per-step and per-cell costs measured on 2 idle cores put the default demo under 9 minutes (measured:
    7.9, benchmarks/results/demo/COMMAND.md); a default method added later must pay for itself."""
    from longwin.jobs.demo import DemoConfig, _plan

    assert sum(seconds for _, seconds in _plan(DemoConfig())) <= 9 * 60
