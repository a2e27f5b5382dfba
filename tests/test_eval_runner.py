"""The runner: result files, resume after an interruption, determinism, batching, window flags,
perplexity conventions, the model-adapter protocol, and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from conftest import make_tiny_llama
from longwin.errors import LongwinError
from longwin.eval import CausalLMAdapter, EvalModel, Prompt, evaluate

torch.set_num_threads(1)

FAST = dict(samples=2, depths=[0.0, 50.0, 100.0], max_new_tokens=4, progress=False)


class Counting:
    """An EvalModel wrapper that counts calls and can fail after a number of generated prompts."""

    def __init__(self, inner: EvalModel, fail_after: int | None = None) -> None:
        self.inner = inner
        self.name, self.tokenizer = inner.name, inner.tokenizer
        self.window, self.position_limit = inner.window, inner.position_limit
        self.identity, self.memory_needed = inner.identity, inner.memory_needed
        self.fail_after = fail_after
        self.prompts: list[Prompt] = []

    def generate(self, prompts, max_new_tokens):
        if self.fail_after is not None and len(self.prompts) + len(prompts) > self.fail_after:
            raise KeyboardInterrupt
        self.prompts.extend(prompts)
        return self.inner.generate(prompts, max_new_tokens)

    def token_nll(self, ids, score_from):
        return self.inner.token_nll(ids, score_from)


@pytest.fixture
def adapter(tiny_tokenizer):
    return CausalLMAdapter(make_tiny_llama(), tiny_tokenizer, name="tiny")


def read_rows(out):
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


def test_run_writes_json_csv_and_plots(tmp_path, tiny_tokenizer):
    out = tmp_path / "run"
    results = evaluate((make_tiny_llama(), tiny_tokenizer), "passkey", [256, 384], out, seed=3, **FAST)
    summary = results["tasks"]["passkey"]
    assert summary["cells"] == 2 * 3 * 2 and summary["exceeds_window"] == 12  # tiny model: 64-token window
    assert set(summary["series"]["accuracy"]) == {"256", "384"}
    assert json.loads((out / "results.json").read_text())["tasks"]["passkey"]["cells"] == 12
    rows = read_rows(out)
    assert len(rows) == 12 and {r["task"] for r in rows} == {"passkey"}
    assert all(int(r["prompt_tokens"]) <= int(r["length"]) and r["exceeds_window"] == "True" for r in rows)
    assert len({r["key"] for r in rows}) == 12
    for name in summary["plots"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_interrupted_run_resumes_with_only_the_rest(tmp_path, adapter):
    full = evaluate(adapter, "passkey", [256, 384], tmp_path / "full", batch_size=1, **FAST)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        evaluate(Counting(adapter, fail_after=5), "passkey", [256, 384], out, batch_size=1, **FAST)
    assert len((out / "cells.jsonl").read_text().splitlines()) == 5
    with (out / "cells.jsonl").open("a") as f:
        f.write('{"task": "passkey", "key": "passkey/2')  # a line cut short by the interruption
    again = Counting(adapter)
    resumed = evaluate(again, "passkey", [256, 384], out, batch_size=1, **FAST)
    assert len(again.prompts) == 12 - 5
    assert resumed["tasks"] == full["tasks"]
    same = {r["key"]: (r["prompt_sha"], r["output"]) for r in read_rows(tmp_path / "full")}
    assert {r["key"]: (r["prompt_sha"], r["output"]) for r in read_rows(out)} == same
    idle = Counting(adapter)
    evaluate(idle, "passkey", [256, 384], out, batch_size=1, **FAST)
    assert idle.prompts == []  # everything finished: nothing recomputed


def test_changed_options_are_not_reused(tmp_path, adapter):
    out = tmp_path / "run"
    evaluate(adapter, "passkey", [256], out, **FAST)
    other_seed = Counting(adapter)
    evaluate(other_seed, "passkey", [256], out, seed=1, **FAST)
    assert len(other_seed.prompts) == 6
    wider = Counting(adapter)
    results = evaluate(wider, "passkey", [256, 320], out, seed=1, **FAST)
    assert len(wider.prompts) == 6 and results["tasks"]["passkey"]["cells"] == 12


def test_same_seed_same_run_and_batching_changes_nothing(tmp_path, adapter):
    a = evaluate(adapter, "passkey,kv-retrieval", [512], tmp_path / "a", batch_size=1, **FAST)
    b = evaluate(adapter, "passkey,kv-retrieval", [512], tmp_path / "b", batch_size=4, **FAST)
    rows_a, rows_b = read_rows(tmp_path / "a"), read_rows(tmp_path / "b")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in rows_a]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in rows_b]
    assert a["tasks"] == b["tasks"]


def test_batching_pads_on_the_left(adapter, tiny_tokenizer):
    short = Prompt(tiny_tokenizer("The pass key is")["input_ids"], 0)
    long = Prompt(tiny_tokenizer("The grass is green. The sky is blue. The pass key is")["input_ids"], 0)
    together = adapter.generate([short, long], 6)
    assert together == adapter.generate([short], 6) + adapter.generate([long], 6)
    assert all(len(out) == 6 for out in together)


def test_nll_matches_full_logits(adapter, tiny_tokenizer):
    ids = tiny_tokenizer("The grass is green. The sky is blue. " * 8)["input_ids"]
    adapter.logits_chunk = 7  # several lm_head chunks
    losses = adapter.token_nll(ids, 5)
    nll, count = float(losses.sum()), len(losses)
    with torch.no_grad():
        logits = adapter.model(torch.tensor([ids])).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[4:-1], torch.tensor(ids[5:]), reduction="sum")
    assert count == len(ids) - 5
    assert nll == pytest.approx(expected.item(), rel=1e-5)


class Recorder:
    """A fake EvalModel (no torch module) recording every nll call: what a SharedLLM adapter sees."""

    name = identity = "recorder"
    window = 100
    position_limit = None

    def memory_needed(self, tokens, cache=True):
        return tokens

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls: list[tuple[list[int], int]] = []
        self.prompts: list[Prompt] = []

    def generate(self, prompts, max_new_tokens):
        self.prompts.extend(prompts)
        return [self.tokenizer("12345")["input_ids"][1:] for _ in prompts]

    def token_nll(self, ids, score_from):
        self.calls.append((list(ids), score_from))
        return torch.full((len(ids) - score_from,), 2.0)


def test_ppl_conventions(tmp_path, tiny_tokenizer):
    model = Recorder(tiny_tokenizer)
    assert isinstance(model, EvalModel)
    results = evaluate(model, "ppl", [64, 128], tmp_path, samples=2, last_k=16, progress=False)
    rows = read_rows(tmp_path)
    assert len(rows) == 2 * 3 * 2
    by = {r["key"]: r for r in rows}
    assert int(by["ppl/64/chunks/0"]["tokens"]) == 63  # every token after BOS
    assert int(by["ppl/128/last-k/1"]["tokens"]) == 16
    assert int(by["ppl/64/sliding/0"]["tokens"]) == 2 * 63  # every token of the span exactly once
    assert by["ppl/64/sliding/0"]["convention"].startswith("sliding (window 64, stride 32")
    assert by["ppl/64/sliding/0"]["exceeds_window"] == "False" and by["ppl/128/chunks/0"]["exceeds_window"] == "True"
    for series in results["tasks"]["ppl"]["series"].values():
        assert all(v == pytest.approx(math.exp(2.0), abs=1e-3) for v in series.values())
    assert set(results["tasks"]["ppl"]["conventions"]) == {"sliding", "chunks", "last-k"}
    # last-k scores the same tokens at every length: only the context before them grows
    last_k = [(ids, start) for ids, start in model.calls if len(ids) - start == 16]
    targets = {tuple(ids[start:]) for ids, start in last_k}
    assert len(last_k) == 4 and len(targets) == 2
    assert all(len(ids) <= 128 and ids[0] == tiny_tokenizer.bos_token_id for ids, _ in model.calls)


def test_ppl_with_tiny_model_is_finite(tmp_path, tiny_tokenizer):
    results = evaluate((make_tiny_llama(), tiny_tokenizer), "ppl", [128], tmp_path, samples=1, progress=False)
    for series in results["tasks"]["ppl"]["series"].values():
        assert 50 < series["128"] < 2000  # random weights: about the vocabulary size (320)


def test_ppl_cells_keep_every_scored_tokens_loss(tmp_path, tiny_tokenizer):
    from longwin.eval.tasks.ppl import decode_losses

    model = (make_tiny_llama(), tiny_tokenizer)
    evaluate(model, "ppl", [128], tmp_path, samples=2, last_k=16, conventions=["chunks", "last-k", "sliding"])
    cells = [json.loads(line) for line in (tmp_path / "cells.jsonl").read_text().splitlines()]
    for cell in cells:
        losses = decode_losses(cell["token_nll"])
        assert len(losses) == cell["tokens"] and float(losses.double().sum()) == pytest.approx(cell["nll"])
    by = {(c["position"], c["sample"]): decode_losses(c["token_nll"]) for c in cells}
    for sample in range(2):  # the same window: last-k's losses are the tail of chunks'
        torch.testing.assert_close(by["chunks", sample][-16:], by["last-k", sample])
    assert "token_nll" not in (tmp_path / "results.csv").read_text().splitlines()[0]


def test_prompts_carry_the_context_split(tmp_path, tiny_tokenizer):
    model = Recorder(tiny_tokenizer)
    results = evaluate(model, "passkey", [300], tmp_path, samples=1, depths=[50.0], progress=False, save_prompts=True)
    prompt = model.prompts[0]
    assert 0 < prompt.context_end < len(prompt.ids)
    assert tiny_tokenizer.decode(prompt.ids[prompt.context_end :]) == "\nWhat is the pass key? The pass key is"
    assert results["tasks"]["passkey"]["series"]["accuracy"]["300"] == 0.0  # "12345" is never the key
    saved = json.loads((tmp_path / "prompts.jsonl").read_text().splitlines()[0])
    assert saved["key"] == "passkey/300/50/0" and saved["prompt"].endswith("The pass key is")


def test_all_generation_tasks_run(tmp_path, tiny_tokenizer):
    results = evaluate(
        Recorder(tiny_tokenizer),
        "needle,kv-retrieval,lines",
        [700],
        tmp_path,
        samples=1,
        depths=[50.0],
        positions=[0.0, 100.0],
        progress=False,
    )
    assert {t: s["cells"] for t, s in results["tasks"].items()} == {"needle": 1, "kv-retrieval": 2, "lines": 1}
    files = {p.name for p in tmp_path.iterdir()}
    assert {
        "needle_heatmap.png",
        "needle_heatmap_rouge.png",
        "kv_retrieval_position.png",
        "lines_accuracy.png",
    } <= files


def test_ruler_summary_and_effective_length(tmp_path, tiny_tokenizer):
    class Oracle(Recorder):
        """Answers RULER perfectly at the shortest length only (reads the gold strings from the prompt)."""

        def __init__(self, tokenizer, answers):
            super().__init__(tokenizer)
            self.answers = answers

        def generate(self, prompts, max_new_tokens):
            return [self.tokenizer(self.answers.get(tuple(p.ids), ""))["input_ids"][1:] for p in prompts]

    from longwin.eval.options import EvalOptions
    from longwin.eval.prompting import PromptFormatter
    from longwin.eval.tasks import make_task

    task = make_task("ruler", EvalOptions(samples=1, ruler_tasks=["niah_single_1", "vt"]), 0)
    fmt = PromptFormatter(tiny_tokenizer)
    answers = {}
    for cell in task.cells([1024]):
        sample = task.build(cell, fmt)
        answers[tuple(sample.prompt.ids)] = " ".join(sample.answer)
    results = evaluate(
        Oracle(tiny_tokenizer, answers),
        "ruler",
        [1024, 1536],
        tmp_path,
        samples=1,
        ruler_tasks=["niah_single_1", "vt"],
        progress=False,
    )
    ruler = results["tasks"]["ruler"]
    assert ruler["series"]["average"] == {"1024": 100.0, "1536": 0.0}
    assert ruler["effective_length"] == 1024 and ruler["threshold"] == 85.6
    assert (tmp_path / "ruler_scores.png").exists()


def test_learned_positions_cannot_go_past_their_table(tmp_path, tiny_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=320, n_positions=64, n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(LongwinError, match="64 learned position embeddings"):
        evaluate((gpt2, tiny_tokenizer), "passkey", [256], tmp_path, progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(tasks="passkey,nope"),
            "unknown task 'nope' \\(known: copy, kv-retrieval, lines, longbench, needle, passkey",
        ),
        (dict(tasks=""), "no task given"),
        (dict(lengths=[0]), "lengths must be positive"),
        (dict(lengths="12,abc"), "lengths must be integers"),
        (dict(bogus=1), "unknown eval option\\(s\\): bogus"),
        (dict(lengths=[64]), "too short for a passkey prompt"),
        (dict(tasks="ppl", conventions=["rolling"]), "unknown perplexity convention"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, adapter, kwargs, message):
    args = dict(tasks="passkey", lengths=[256], progress=False) | kwargs
    with pytest.raises(LongwinError, match=message) as info:
        evaluate(adapter, args.pop("tasks"), args.pop("lengths"), tmp_path, **args)
    assert "\n" not in str(info.value)


def test_model_without_tokenizer_is_an_error(tmp_path):
    with pytest.raises(LongwinError, match="no tokenizer"):
        evaluate(make_tiny_llama(), "passkey", [256], tmp_path)
