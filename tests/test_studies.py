"""The studies layer on small synthetic records: reading a record never mixes fingerprints, tables and
verdicts say "not measured" instead of failing where a stage has not run, and an output with no number is a
refusal, not a misread."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from longwin.studies.answers import first_number, wrong_numbers
from longwin.studies.records import MixedRecord, read_cells, task_cells
from longwin.studies.retention import retention_cells
from longwin.studies.rows import ModelRow
from longwin.studies.stages import Study, main
from longwin.studies.tables import depth_table, share, status_list
from longwin.studies.verdicts import Bar, all_overlap, holds, overlap


def passkey_cells(fingerprint: str, length: int, scores: dict[float, list[float]]) -> list[dict]:
    return [
        {"key": f"passkey/{length}/{depth}/{i}", "fingerprint": fingerprint, "length": length,
         "position": str(depth), "score": score, "output": "", "answer": "12345"}
        for depth, found in scores.items()
        for i, score in enumerate(found)
    ]  # fmt: skip


def write_record(folder: Path, cells: list[dict], listed: list[str] | None = None, task: str = "passkey") -> None:
    """A `longwin eval` record: cells.jsonl, and (given `listed`) results.csv naming the finished fingerprints
    and results.json counting their cells."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cells.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    if listed is None:
        return
    with (folder / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["key", "fingerprint"])
        writer.writeheader()
        writer.writerows(
            {"key": c["key"], "fingerprint": c["fingerprint"]} for c in cells if c["fingerprint"] in listed
        )
    counted = sum(c["fingerprint"] in listed for c in cells)
    (folder / "results.json").write_text(json.dumps({"tasks": {task: {"cells": counted}}}))


def test_a_record_keeps_the_fingerprint_its_results_list(tmp_path):
    old = passkey_cells("old", 2048, {0.0: [1.0, 1.0], 50.0: [1.0, 1.0]})
    new = passkey_cells("new", 2048, {0.0: [1.0, 0.0], 50.0: [0.0, 0.0]})
    write_record(tmp_path, old + new, listed=["new"])
    assert [c["fingerprint"] for c in read_cells(tmp_path)] == ["new"] * 4
    assert task_cells(tmp_path, "passkey") == 4


def test_cells_of_two_fingerprints_that_nothing_tells_apart_are_refused(tmp_path):
    write_record(tmp_path, passkey_cells("a", 2048, {0.0: [1.0]}) + passkey_cells("b", 2048, {0.0: [0.0]}))
    with pytest.raises(MixedRecord, match="2 fingerprints"):
        read_cells(tmp_path)


def test_the_last_line_of_a_key_wins_and_a_single_fingerprint_needs_no_listing(tmp_path):
    first = passkey_cells("a", 2048, {0.0: [0.0]})
    rerun = passkey_cells("a", 2048, {0.0: [1.0]})
    write_record(tmp_path, first + rerun)
    assert [c["score"] for c in read_cells(tmp_path)] == [1.0]


def test_a_missing_record_is_empty_not_an_error(tmp_path):
    assert read_cells(tmp_path / "never-run") == []
    assert task_cells(tmp_path / "never-run", "passkey") is None


def test_depth_table_shows_hits_per_depth_and_the_wilson_interval_of_all():
    cells = passkey_cells("a", 16384, {0.0: [1.0, 1.0], 50.0: [1.0, 0.0]})
    header, rule, row = depth_table({"cream": cells, "pose": []}, [2048, 16384], [0.0, 50.0, 100.0])
    assert header == "| model | length | depth 0 % | depth 50 % | depth 100 % | all (Wilson 95 %) |"
    assert rule == "|---|---|---|---|---|---|"
    assert row == "| cream | 16K | 2/2 | 1/2 | – | 75 % (30–95) |"  # depth 100 %: no cell, no row for pose


def test_a_table_of_a_study_with_nothing_run_is_its_header():
    assert len(depth_table({"cream": []}, [2048], [0.0])) == 2


def test_a_missing_stage_is_to_do_in_the_report_and_the_listing(tmp_path, capsys):
    done = {"ppl:base"}
    assert status_list(["ppl:base", "passkey:base"], done.__contains__) == (
        "- done: `ppl:base`\n- to do: `passkey:base`"
    )
    report_path = tmp_path / "report.md"
    study = Study("A study.", ["ppl:base", "passkey:base"], done.__contains__, _no_run, lambda: "# r\n",
                  report_path, str(tmp_path))  # fmt: skip
    assert main(study, ["--list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["done  ppl:base", "todo  passkey:base"]
    assert main(study, ["--report"]) == 0 and report_path.read_text() == "# r\n"


def _no_run(stage: str, work: Path) -> None:
    raise AssertionError(f"{stage} should not run")


def test_an_output_with_no_number_is_a_refusal_not_a_misread():
    cells = [
        {"output": "The pass key is", "answer": 12345},
        {"output": "It is 54321.", "answer": 12345},
        {"output": "12345", "answer": 12345},
        {"output": "about 12", "answer": 12345},
    ]
    assert [first_number(c["output"]) for c in cells] == ["", "54321", "12345", "12"]
    assert wrong_numbers(cells) == 1


def test_bars_are_named_values_printed_from_themselves():
    ratio = Bar(1.15, at_most=True)
    assert (ratio.meets(1.15), ratio.meets(1.2), f"the {ratio} bar") == ("meets", "misses", "the 1.15 bar")
    assert Bar(0.8).passed(0.8) and not Bar(0.8).passed(0.79)
    assert (holds(None), holds(True), holds(False)) == ("not measured", "**holds**", "**does not hold**")


def test_wilson_overlap_and_share():
    assert share((9, 10)) == "9/10 (60–98 %)"
    assert overlap((5, 10), (6, 10)) and not overlap((0, 20), (20, 20))
    assert all_overlap([(5, 10), (6, 10), (4, 10)]) and not all_overlap([(0, 20), (10, 20), (20, 20)])


def test_retention_against_the_base_marks_what_either_lacks():
    assert retention_cells({2048: 10.5, 8192: 9.0}, {2048: 10.0}, [2048, 8192]) == ["+5.0 %", "–"]


def test_a_row_is_base_free_or_trained():
    assert ModelRow("train", "cream", "yarn", rope_options="attention_factor=1.0").train_flags() == [
        "--scheme", "cream", "--rope", "yarn", "--rope-options", "attention_factor=1.0"
    ]  # fmt: skip
    assert not ModelRow("free", rope="yarn").trained
    with pytest.raises(ValueError, match="unknown row make"):
        ModelRow("fine-tuned")


@pytest.fixture
def smollm2_records(tmp_path, monkeypatch):
    """The SmolLM2 study reading records from an empty folder."""
    import smollm2_plan
    import smollm2_records

    monkeypatch.setattr(smollm2_plan, "RESULTS", tmp_path)
    monkeypatch.setattr(smollm2_records, "RESULTS", tmp_path)
    return tmp_path


def test_smollm2_verdicts_wait_for_their_records(smollm2_records):
    from smollm2_plan import STAGES, done
    from smollm2_task_verdicts import middle_verdicts
    from smollm2_verdicts import base_verdicts, layout_verdict, trained_verdict

    assert not any(done(s) for s in STAGES)
    assert base_verdicts() == [] and layout_verdict("yarn") == "" and trained_verdict("cream-yarn") == ""
    assert middle_verdicts() == []


def test_smollm2_cream_vs_pose_in_the_middle_reads_one_fingerprint(smollm2_records):
    from smollm2_task_verdicts import middle_verdicts

    middle = {25.0: [1.0, 1.0], 50.0: [1.0, 0.0], 75.0: [1.0, 1.0]}
    stale = passkey_cells("stale", 16384, {25.0: [0.0, 0.0], 50.0: [0.0, 0.0], 75.0: [0.0, 0.0]})
    write_record(smollm2_records / "cream-yarn" / "passkey", stale + passkey_cells("c", 16384, middle), ["c"])
    write_record(smollm2_records / "pose-yarn" / "passkey", passkey_cells("p", 16384, middle), ["p"])
    (line,) = middle_verdicts()
    assert "CREAM 5/6 (44–97 %), PoSE 5/6 (44–97 %)" in line and "cannot be told apart" in line


def test_a_row_loads_with_its_own_eval_flags():
    yarn = ModelRow("free", rope="yarn", eval_options=("--truncate", "16384"))
    assert yarn.eval_flags("smollm2-135m", 16384) == [
        "--model", "smollm2-135m", "--rope", "yarn", "--target-length", "16384", "--truncate", "16384"
    ]  # fmt: skip
    trees_off = ModelRow("train", method="sharedllm", training="lm", eval_options=("--adapter-options", "trees=false"))
    assert trees_off.eval_flags("out/models/lm", 0) == ["--model", "out/models/lm", "--adapter-options", "trees=false"]


@pytest.fixture
def sharedllm_records(tmp_path, monkeypatch):
    """The SharedLLM study reading records from an empty folder."""
    import smollm2_sharedllm_plan
    import smollm2_sharedllm_report

    monkeypatch.setattr(smollm2_sharedllm_plan, "RESULTS", tmp_path)
    monkeypatch.setattr(smollm2_sharedllm_report, "RESULTS", tmp_path)
    monkeypatch.setattr(smollm2_sharedllm_report, "DISTILL", tmp_path / "sharedllm_distill")
    return tmp_path


def test_the_sharedllm_report_of_a_study_not_run_yet_says_so(sharedllm_records):
    from smollm2_sharedllm_report import report

    text = report()
    assert "- to do: `train:lm`" in text and "Not trained yet." in text
    assert text.count("Not measured yet.") >= 6  # perplexity, three passkey tables, benchmark, probes
    assert "cannot tell; longwin has no CEPE baseline" in text  # the one verdict that needs no record


def test_sharedllm_key_in_the_local_window_counts_an_output_without_a_number_as_no_answer(sharedllm_records):
    from smollm2_sharedllm_verdicts import native_verdicts

    outputs = ["I cannot find it.", "The pass key is 54321.", "12345"]
    cells = [
        {"key": f"passkey/2048/75/{i}", "fingerprint": "f", "length": 2048, "position": "75",
         "score": float(out == "12345"), "output": out, "answer": "12345"}
        for i, out in enumerate(outputs)
    ]  # fmt: skip
    write_record(sharedllm_records / "sharedllm" / "native", cells, ["f"])
    (line,) = native_verdicts("sharedllm")  # no base record: no retention pair, only the local-window line
    assert "answers a number in 2 of 3 cells, the right one in 1, a wrong number of the key's length in 1" in line


def _seeds(*values: float) -> dict:
    from toy_reproduction_summary import stats

    return stats(list(values))


def test_toy_claims_check_what_is_measured_and_skip_what_is_not():
    from toy_reproduction_claims import claims

    rows = {
        "base": {"ppl/sliding/256": _seeds(60.0, 62.0), "copy/accuracy/256": _seeds(50.0, 60.0)},
        "cream": {"ppl/sliding/512": _seeds(63.0, 70.0), "copy/accuracy/256": _seeds(30.0, 40.0)},
    }
    found = dict(claims(rows, 2))
    assert found["Target: CREAM perplexity at 512 within 10 % of the base's at 256"].startswith(
        "**holds**: 66.5 vs 61.0"
    )
    copy = found["Target: CREAM copies inside the window within 10 points of the base (a task no recipe trains on)"]
    assert copy == "**does not hold**: 35.0 vs 55.0 % of the span copied at 256 tokens."
    assert len(found) == 2  # no passkey, kv, lines or SharedLLM record: no claim about them, and no error


def test_toy_sharedllm_claim_pairs_seeds_and_needs_every_seed():
    from toy_reproduction_claims import sharedllm_claims

    key = "ppl/sliding/512"
    rows = {"truncation": {key: _seeds(70.0, 72.0)}, "sharedllm": {key: _seeds(69.0, 73.0)}}
    ((claim, verdict),) = sharedllm_claims(rows, "512")
    assert verdict.startswith("**does not hold**: 71.00 vs 71.00, lower in 1 of 2 seeds (paired difference +0.00).")
    assert sharedllm_claims({**rows, "sharedllm": {key: _seeds(69.0)}}, "512") == []  # seeds missing: no claim


def test_the_demo_and_the_toy_reproduction_name_their_rows_with_one_definition():
    from toy_reproduction_summary import FREE_METHODS, POSITION_METHODS

    from longwin.jobs.demo import ROWS

    assert all(isinstance(row, ModelRow) for row in ROWS.values())
    assert set(POSITION_METHODS + FREE_METHODS) <= set(ROWS)  # the toy trains and rescales through the demo's rows
    assert [n for n in FREE_METHODS if ROWS[n].make == "free"] == FREE_METHODS


def test_retention_table_marks_a_task_a_row_lacks():
    from longwin.studies.comparison import retention_table

    def run(**values: float) -> dict:
        return {"tasks": {task: {"series": {"accuracy": {"256": v}}} for task, v in values.items()}}

    table = retention_table({"base": run(passkey=100.0, copy=55.83), "cream": run(passkey=90.0)}, 256)
    assert table.splitlines()[2:] == ["| base | 100.00 | 55.83 |", "| cream | 90.00 | - |"]


def test_verdict_words_read_the_interval_not_its_rounded_text() -> None:
    import toy_retention

    from longwin.eval.paired import Interval
    from longwin.studies.verdicts import said

    # shown as 1.012 [1.000, 1.025]: the whole interval is above 1, so the ratio is worse, not "no difference"
    assert said(Interval(1.012, 1.0004, 1.025, 96), 1.0, True) == "worse"
    assert said(Interval(0.98, 0.97, 0.99, 96), 1.0, True) == "better"
    assert said(Interval(1.0, 0.99, 1.01, 96), 1.0, True) == "no measurable difference"
    assert said(Interval(1.0, float("nan"), float("nan"), 3), 1.0, True) == "not measured"
    assert said(None, 0.0, False) == "not measured"
    assert toy_retention._said_score((40.0, Interval(-16.4, -31.7, -2.5, 30))) == "worse"
    assert toy_retention._said_score((40.0, Interval(0.3, 0.0, 0.8, 30))) == "no measurable difference"
    assert toy_retention._said_score(None) == "not measured"


def test_sharedllm_report_states_the_distillation_pilots_decision(tmp_path, monkeypatch):
    import smollm2_sharedllm_report as report

    folder = tmp_path / "sharedllm_distill"
    monkeypatch.setattr(report, "DISTILL", folder)
    assert report.distill_pilot() == report.NOT_MEASURED
    measured = {
        "kl_with_trees": 0.40, "kl_without_trees": 0.44, "reduction": 1 - 0.40 / 0.44,
        "plain_kl_with_trees": 0.2, "plain_kl_without_trees": 0.21, "plain_reduction": 1 - 0.2 / 0.21,
        "reduction_interval": [0.05, 0.12], "plain_reduction_interval": [0.0, 0.1],
        "examples": [[0.3, 0.4], [0.5, 0.48]],
    }  # fmt: skip
    record = {
        "trained": measured,
        "untrained": {**measured, "kl_with_trees": 0.44, "reduction": 0.0},
        "decision": "go on",
        "stop_rule": "reduction of the weighted KL with trees vs without >= 0.05",
        "heldout_examples": 12,
        "training": {
            "steps": 50,
            "final_loss": 0.5,
            "train_runtime": 500.0,
            "train_wall_seconds": 900.0,
            "distill": {"examples": 50, "key_token_share": 0.021},
        },  # fmt: skip
    }
    folder.mkdir(parents=True)
    (folder / "pilot.json").write_text(json.dumps(record))
    text = report.distill_pilot()
    assert "| after the pilot, `cross_attn+top` trained | 0.4000 | 0.4400 | +9.09 % [+5.0, +12.0] |" in text
    assert "**Decision: go on**" in text and "10.0 s a step" in text and "key tokens 2.1 %" in text
    assert "from 0.4400 (untrained) to 0.4400; 1 of 2 examples have a lower KL with the trees" in text
    (folder / "pilot-cross_attn.json").write_text(json.dumps({**record, "trainable": "cross_attn"}))
    text = report.distill_pilot()
    assert text.count("untrained (o_proj = 0)") == 1 and "after the pilot, `cross_attn` trained" in text


def copy_cells(fingerprint: str, scores: dict[int, list[float]], prompts: str = "p") -> list[dict]:
    """Ten copy cells a length (2 a depth), each with the digest of its prompt."""
    return [
        {"task": "copy", "key": f"copy/{n}/{d}/{i}", "fingerprint": fingerprint, "length": n, "position": str(d),
         "score": s, "whole": float(s == 1.0), "prompt_sha": f"{prompts}{n}-{d}-{i}"}
        for n, row in scores.items()
        for j, s in enumerate(row)
        for d, i in [((0, 25, 50, 75, 100)[j // 2], j % 2)]
    ]  # fmt: skip


def test_smollm2_copy_retention_pairs_the_base_on_the_same_prompts_only(smollm2_records):
    from smollm2_task_verdicts import copy_retention_verdict

    base = copy_cells("b", {2048: [1.0] * 10, 8192: [0.5] * 10})
    write_record(smollm2_records / "base" / "copy", base, ["b"], "copy")
    worse = {2048: [0.5] * 10, 8192: [0.5] * 10}
    write_record(smollm2_records / "cream-yarn" / "copy", copy_cells("c", worse), ["c"], "copy")
    other = copy_cells("q", worse, prompts="other")  # another haystack: no prompt in common with the base
    write_record(smollm2_records / "pose-yarn" / "copy", other, ["q"], "copy")
    (line,) = copy_retention_verdict()
    assert line.startswith("- **cream-yarn, words copied inside the window")
    assert "-50.0 [-50.0, -50.0] points at 2K; +0.0 [+0.0, +0.0] points at 8K." in line
    free = copy_cells("y", {16384: [0.5] * 10})
    write_record(smollm2_records / "yarn-free" / "copy", free, ["y"], "copy")
    write_record(smollm2_records / "cream-yarn" / "copy", copy_cells("c", {**worse, 16384: [0.25] * 10}), ["c"], "copy")
    inside, reach = copy_retention_verdict()  # yarn-free has no 2K/8K cells; the free bar is judged at 16K only
    assert reach.startswith("- **cream-yarn, words copied at 16K vs training-free YaRN (same prompts):**")
    assert reach.endswith(" -25.0 [-25.0, -25.0] points at 16K.")
