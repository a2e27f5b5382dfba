"""Evaluation haystacks come from held-out documents: the demo (and the toy studies built on it) and the
SmolLM2 study plant needles, RULER items and copy spans only in text no evaluated model was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longwin.data.corpora import Document, split_documents


def test_demo_plants_items_in_its_heldout_documents(monkeypatch, tmp_path: Path) -> None:
    import longwin.eval
    from longwin.jobs.demo import DemoConfig, evaluate_method

    seen: dict = {}
    monkeypatch.setattr(longwin.eval, "evaluate", lambda *a, **kw: seen.update(kw) or {})
    heldout = tmp_path / "heldout.jsonl"
    evaluate_method(DemoConfig(out=str(tmp_path)), "base", "toy", tmp_path / "eval", heldout)
    assert seen["haystack"] == seen["corpus"] == str(heldout)


def test_demo_heldout_documents_are_the_training_split_held_out(monkeypatch, tmp_path: Path) -> None:
    import longwin.data.corpora as corpora
    from longwin.jobs.demo import DemoConfig, heldout_corpus

    docs = [Document(f"d{i}", f"text of document {i}.") for i in range(40)]
    monkeypatch.setattr(corpora, "load_documents", lambda spec: docs)
    train, held = split_documents(docs, 0.1, seed=0)
    rows = [json.loads(line) for line in heldout_corpus(DemoConfig(seed=0), tmp_path).read_text().splitlines()]
    assert {r["id"] for r in rows} == {d.id for d in held}
    assert not {r["id"] for r in rows} & {d.id for d in train}


@pytest.mark.parametrize(("stage", "with_haystack"), [("copy:base", True), ("passkey:base", False)])
def test_smollm2_copy_stage_reads_the_heldout_haystack(monkeypatch, tmp_path: Path, stage, with_haystack) -> None:
    import smollm2_study

    docs = [Document(f"{src}:d{i}", f"text of document {i}.") for i in range(30) for src in ("kjv", "pydoc")]
    train, held = split_documents(docs, 0.1, seed=0)
    monkeypatch.setattr(smollm2_study, "split_data", lambda: (train, held))
    monkeypatch.setattr(smollm2_study, "RESULTS", tmp_path / "results")
    calls: list[list[str]] = []
    monkeypatch.setattr(smollm2_study, "run_longwin", lambda argv, root: calls.append(argv))
    smollm2_study.run_stage(stage, tmp_path / "work")
    (argv,) = calls
    assert ("--haystack" in argv) == with_haystack
    if with_haystack:
        path = Path(argv[argv.index("--haystack") + 1])
        ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
        assert ids == [d.id for d in held if d.id.startswith("kjv:")]  # code-heavy pydoc is left out
        assert any(d.id.startswith("pydoc:") for d in held)


def _trained_folder(tmp_path: Path, data: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "longwin_training.json").write_text(json.dumps({"extend_config": {"data": data}}))
    return folder


@pytest.mark.parametrize(
    ("haystack", "flagged"),
    [("", True), ("essays", True), ("bbcnews", False), ("heldout.jsonl", False)],
)
def test_eval_warns_when_a_haystack_is_the_models_training_text(tmp_path: Path, haystack, flagged) -> None:
    from longwin.eval.contamination import training_text_warnings
    from longwin.eval.options import make_options
    from longwin.eval.tasks import make_task

    folder = _trained_folder(tmp_path, "austen+kjv+pydoc+essays")
    tasks = [make_task("copy", make_options({"haystack": haystack}), 0), make_task("passkey", make_options({}), 0)]
    lines = training_text_warnings(folder, tasks)
    assert len(lines) == flagged
    if flagged:
        assert lines[0].startswith("copy's haystack 'essays' is training text")


def test_eval_warns_on_a_perplexity_corpus_given_as_the_training_files_path(tmp_path: Path) -> None:
    from longwin.eval.contamination import training_text_warnings
    from longwin.eval.options import make_options
    from longwin.eval.tasks import make_task

    data = tmp_path / "docs.jsonl"
    data.write_text('{"text": "a"}\n')
    folder = _trained_folder(tmp_path, str(data))
    same_file = f"{tmp_path}/./docs.jsonl"  # another spelling of the same path
    task = make_task("ppl", make_options({"corpus": same_file}), 0)
    assert len(training_text_warnings(folder, [task])) == 1
    assert training_text_warnings(tmp_path / "no-card", [task]) == []


def test_longwin_eval_prints_the_warning_before_loading(tmp_path: Path, capsys) -> None:
    from longwin.cli import main

    folder = _trained_folder(tmp_path, "essays+kjv")
    code = main(["eval", "--model", str(folder), "--task", "needle", "--lengths", "256", "--out", str(tmp_path / "o")])
    assert code != 0  # the folder has no weights: loading fails after the warning
    assert "needle's haystack 'essays' is training text" in capsys.readouterr().err
