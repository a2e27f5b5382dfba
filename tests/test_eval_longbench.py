"""LongBench on small hand-made JSONL fixtures: prompts, middle truncation, metrics, errors."""

from __future__ import annotations

import json

import pytest

from longwin.errors import LongwinError
from longwin.eval import evaluate
from longwin.eval.options import EvalOptions
from longwin.eval.prompting import PromptFormatter
from longwin.eval.tasks import make_task

HOTPOT = [
    {
        "_id": "h1",
        "input": "Who wrote the letter?",
        "answers": ["Alice"],
        "length": 3000,
        "all_classes": None,
        "context": "Passage 1:\nSTART The letter was written by Alice. " + "Filler words go here. " * 60 + "END",
    },
    {
        "_id": "h2",
        "input": "Where did it happen?",
        "answers": ["Paris", "in France"],
        "length": 9000,
        "all_classes": None,
        "context": "Passage 1:\nIt happened in Paris.",
    },
]
TREC = [
    {
        "_id": "t1",
        "input": "What is the capital of France?",
        "answers": ["Location"],
        "length": 100,
        "all_classes": ["Individual", "Location", "Other location"],
        "context": "Question: Who is he?\nType: Individual\nQuestion: Where is it?\nType: Location\n",
    }
]


def write(folder, name, items):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "longbench"
    write(folder, "hotpotqa", HOTPOT)
    write(folder, "trec", TREC)
    (folder / "notes.jsonl").write_text("{}\n")  # not a LongBench task name: ignored
    return folder


class Answering:
    """A fake EvalModel answering every prompt with a fixed text."""

    name, window, position_limit = "answering", 4096, None
    identity = "answering"

    def memory_needed(self, tokens, cache=True):
        return tokens

    def __init__(self, tokenizer, answer):
        self.tokenizer, self.answer, self.prompts = tokenizer, answer, []

    def generate(self, prompts, max_new_tokens):
        self.prompts.extend(prompts)
        return [self.tokenizer(self.answer, add_special_tokens=False)["input_ids"] for _ in prompts]

    def token_nll(self, ids, score_from):
        raise AssertionError("not used")


def test_prompts_and_middle_truncation(data_dir, tiny_tokenizer):
    task = make_task("longbench", EvalOptions(data_dir=str(data_dir)), 0)
    assert task.datasets == ["hotpotqa", "trec"]
    fmt = PromptFormatter(tiny_tokenizer)
    cells = task.cells([400])
    assert [c.key for c in cells] == ["longbench/400/hotpotqa/0", "longbench/400/hotpotqa/1", "longbench/400/trec/0"]
    long, short, trec = (task.build(c, fmt) for c in cells)
    assert long.info["truncated"] and not short.info["truncated"]
    assert 390 <= len(long.prompt.ids) <= 400
    assert long.text.startswith("Answer the question based on the given passages.") and "START" in long.text
    assert long.text.endswith("Question: Who wrote the letter?\nAnswer:") and "END" in long.text
    assert long.text.count("Filler words go here.") < 60  # the middle went
    assert tiny_tokenizer.decode(long.prompt.ids[long.prompt.context_end :]).startswith("\n\nAnswer the question")
    assert short.text == (
        "Answer the question based on the given passages. Only give me the answer and do not "
        "output any other words.\n\nThe following are given passages.\nPassage 1:\nIt happened in "
        "Paris.\n\nAnswer the question based on the given passages. Only give me the answer and do "
        "not output any other words.\n\nQuestion: Where did it happen?\nAnswer:"
    )
    assert trec.text.endswith("Type: Location\n\nWhat is the capital of France?")
    assert (long.max_new_tokens, trec.max_new_tokens) == (32, 64)


def test_scores_per_task_category_and_bucket(tmp_path, data_dir, tiny_tokenizer):
    model = Answering(tiny_tokenizer, "Paris\nLocation")
    results = evaluate(model, "longbench", [400, 2000], tmp_path / "out", data_dir=str(data_dir), progress=False)
    lb = results["tasks"]["longbench"]
    # hotpotqa: "paris location" vs Alice -> 0; vs Paris -> F1 2/3 (first line is not taken for QA)
    assert lb["series"]["hotpotqa"] == {"400": pytest.approx(33.33, abs=0.01), "2000": pytest.approx(33.33, abs=0.01)}
    assert lb["series"]["trec"] == {"400": 0.0, "2000": 0.0}  # first line "Paris" names no class
    assert lb["series"]["average"]["400"] == pytest.approx(16.67, abs=0.01)
    assert lb["categories"] == {"multi-doc QA": lb["series"]["hotpotqa"], "few-shot": lb["series"]["trec"]}
    assert lb["by_bucket"]["hotpotqa"] == {"0-4k": 0.0, "8k+": pytest.approx(66.67, abs=0.01)}
    assert lb["cells"] == 6
    trec = evaluate(
        Answering(tiny_tokenizer, "Location\nIndividual"),
        "longbench",
        [400],
        tmp_path / "trec",
        data_dir=str(data_dir),
        longbench_tasks=["trec"],
        progress=False,
    )
    assert trec["tasks"]["longbench"]["series"]["trec"] == {"400": 100.0}


def test_samples_limit_items(tmp_path, data_dir, tiny_tokenizer):
    model = Answering(tiny_tokenizer, "Alice")
    results = evaluate(model, "longbench", [400], tmp_path, data_dir=str(data_dir), samples=1, progress=False)
    assert results["tasks"]["longbench"]["cells"] == 2 and len(model.prompts) == 2
    assert results["tasks"]["longbench"]["series"]["hotpotqa"] == {"400": 100.0}


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "longbench needs --data-dir"),
        ({"data_dir": "/nonexistent/longbench"}, "LongBench data folder not found"),
        ({"data_dir": "EMPTY"}, "no LongBench task files"),
        ({"data_dir": "DATA", "longbench_tasks": ["qasper"]}, "LongBench file missing: .*qasper.jsonl"),
        ({"data_dir": "DATA", "longbench_tasks": ["hotpot"]}, "unknown LongBench task 'hotpot'"),
        ({"data_dir": "BAD"}, "hotpotqa.jsonl:2: missing field\\(s\\) answers"),
    ],
)
def test_data_errors(tmp_path, data_dir, options, message):
    (tmp_path / "empty").mkdir()
    write(tmp_path / "bad", "hotpotqa", [HOTPOT[0], {"context": "x", "input": "y"}])
    places = {"EMPTY": tmp_path / "empty", "DATA": data_dir, "BAD": tmp_path / "bad"}
    if options.get("data_dir") in places:
        options = options | {"data_dir": str(places[options["data_dir"]])}
    with pytest.raises(LongwinError, match=message):
        make_task("longbench", EvalOptions(**options), 0)
