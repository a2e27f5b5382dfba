"""`longwin train --method sharedllm` end to end: examples, a saved model the Auto classes load, eval on it."""

from __future__ import annotations

import json
import random

import pytest
from transformers import AutoModelForCausalLM

from conftest import _TEXT
from longwin.cli import main
from longwin.data.pool import DocumentPool
from longwin.data.tokenized import TokenizedCorpus
from longwin.errors import LongwinError
from longwin.methods.sharedllm.dataset import ChunkedWindow, SharedLLMDataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _args(model_dir, corpus, out, *extra):
    return [
        "train",
        "--method",
        "sharedllm",
        "--model",
        str(model_dir),
        "--data",
        str(corpus),
        "--target-length",
        "192",
        "--sharedllm-chunk-size",
        "32",
        "--sharedllm-tree-height",
        "2",
        "--sharedllm-kv-per-node",
        "4",
        "--sharedllm-lower-layers",
        "1",
        "--max-steps",
        "3",
        "--per-device-train-batch-size",
        "2",
        "--use-cpu",
        "true",
        "--output-dir",
        str(out),
        "--learning-rate",
        "1e-3",
        "--save-steps",
        "100",
        "--disable-tqdm",
        "true",
        *extra,
    ]


def test_train_saves_a_sharedllm_the_auto_classes_load_and_eval_runs_on_it(tiny_setup, tmp_path, capsys):
    model_dir, corpus = tiny_setup
    out = tmp_path / "shared"
    assert main(_args(model_dir, corpus, out, "--retrieval-fraction", "0.5", "--sharedllm-local-length", "48")) == 0
    card = json.loads((out / "longwin_training.json").read_text())
    assert card["method"] == "sharedllm" and card["steps"] == 3 and card["context_chunks"] == [1, 4]
    import longwin.methods.sharedllm  # noqa: F401  (registers the model type with the Auto classes)

    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model).__name__ == "SharedLLMForCausalLM" and model.config.chunk_size == 32
    assert card["local_length"] == model.config.local_length == 48  # the eval adapter splits prompts as trained
    evaluated = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--model",
                str(out),
                "--task",
                "passkey,ppl",
                "--lengths",
                "160",
                "--samples",
                "1",
                "--depths",
                "0",
                "--corpus",
                str(corpus),
                "--out",
                str(evaluated),
            ]
        )
        == 0
    )
    results = json.loads((evaluated / "results.json").read_text())
    assert set(results["tasks"]) == {"passkey", "ppl"} and results["window"] is None

    def ppl(folder, *extra):  # the same model, its trees on or off (--adapter-options)
        args = ["eval", "--model", str(out), "--task", "ppl", "--lengths", "160", "--samples", "1"]
        assert main([*args, "--corpus", str(corpus), "--conventions", "last-k", "--out", str(folder), *extra]) == 0
        series = json.loads((folder / "results.json").read_text())["tasks"]["ppl"]["series"]
        return series["last-k"]["160"]

    with_trees = ppl(tmp_path / "trees")
    assert ppl(tmp_path / "trees-again", "--adapter-options", "trees=true") == with_trees
    assert ppl(tmp_path / "local-only", "--adapter-options", "trees=false") != with_trees
    bad = ["eval", "--model", str(out), "--task", "ppl", "--lengths", "160", "--out", str(tmp_path / "x")]
    capsys.readouterr()
    assert main([*bad, "--adapter-options", "colour=red"]) == 2
    assert "unknown adapter option(s) colour for a longwin-sharedllm model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--lora", "true"], "--lora is not supported with --method sharedllm"),
        (["--target-length", "80"], "less than one chunk of 32"),
        (["--sharedllm-min-chunks", "9"], "--sharedllm-min-chunks must be between 1 and the 4 chunks"),
        (["--sharedllm-lower-layers", "5"], "lower"),
        (["--sharedllm-instructions", "x.jsonl"], "needs --sharedllm-stage instruct"),
    ],
)
def test_bad_sharedllm_requests_are_one_line_errors(tiny_setup, tmp_path, capsys, extra, message):
    model_dir, corpus = tiny_setup
    assert main(_args(model_dir, corpus, tmp_path / "o", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and message in err[-1] and err[-1].startswith("longwin train: error:")


def _pool(tokenizer, tmp_path) -> DocumentPool:
    from longwin.data.corpora import Document

    rng = random.Random(0)
    plain = [t for t in _TEXT if "pass key" not in t]  # pass keys come only from the retrieval documents
    docs = [Document(str(i), " ".join(rng.choice(plain) for _ in range(40))) for i in range(4)]
    corpus = TokenizedCorpus.build(docs, tokenizer, tmp_path)
    return DocumentPool(corpus, corpus.indices_longer_than(95), 0, 96)


def test_natural_examples_keep_chunks_whole_and_the_local_window_bounded(tiny_tokenizer, tmp_path):
    pool = _pool(tiny_tokenizer, tmp_path)
    layout = ChunkedWindow(local_length=64, chunk=32, min_chunks=1, max_chunks=6)
    data = SharedLLMDataset(pool, tiny_tokenizer, layout, num_samples=40, seed=0)
    for i in range(40):
        item = data[i]
        assert len(item["context_ids"]) % 32 == 0 and 32 <= len(item["context_ids"]) <= 6 * 32
        assert len(item["input_ids"]) == 64
    assert data[3] == data[3]
    with pytest.raises(LongwinError, match="stage"):
        SharedLLMDataset(pool, tiny_tokenizer, layout, num_samples=1, seed=0, stage="rlhf")


@pytest.mark.parametrize("local_evidence", [0.0, 1.0])
def test_retrieval_evidence_lies_in_the_context_or_in_the_local_window(tiny_tokenizer, tmp_path, local_evidence):
    from longwin.data.retrieval_docs import RetrievalExamples

    pool = _pool(tiny_tokenizer, tmp_path)
    retrieval = RetrievalExamples(tiny_tokenizer, pool.stream, pool.texts(tiny_tokenizer), ["passkey_grass"])
    layout = ChunkedWindow(local_length=96, chunk=32, min_chunks=1, max_chunks=4)
    data = SharedLLMDataset(
        pool,
        tiny_tokenizer,
        layout,
        num_samples=12,
        seed=0,
        retrieval=retrieval,
        retrieval_fraction=1.0,
        local_evidence=local_evidence,
    )
    asked = 0
    for i in range(len(data)):
        item = data[i]
        context, window = (tiny_tokenizer.decode(item[k]) for k in ("context_ids", "input_ids"))
        if "What is the pass key?" not in window:  # no room for the evidence in one chunk: natural text instead
            continue
        asked += 1
        key = window.rsplit("The pass key is", 1)[1].strip(" .")  # the answer closes the local window
        assert key.isdigit() and len(item["context_ids"]) % 32 == 0 and len(item["input_ids"]) == 96
        # the evidence reads "The pass key is K. Remember it. K is the pass key."
        assert (key in context) == (local_evidence == 0) and window.count(key) == (3 if local_evidence else 1)
    assert asked >= 8
    with pytest.raises(LongwinError, match="--sharedllm-local-evidence"):
        SharedLLMDataset(pool, tiny_tokenizer, layout, num_samples=1, seed=0, local_evidence=1.5)


def test_gradient_checkpointing_trains_with_a_frozen_embedding(tiny_setup, tmp_path):
    """cross_attn+top freezes the embedding, so no input of a checkpointed layer requires a gradient: reentrant
    checkpointing (transformers 4.x's default) then backpropagates nothing and fails. longwin asks for
    non-reentrant checkpointing on every version; the loss curve matches training without checkpointing."""
    model_dir, corpus = tiny_setup
    plain, checkpointed = tmp_path / "plain", tmp_path / "checkpointed"
    assert main(_args(model_dir, corpus, plain, "--logging-steps", "1")) == 0
    assert main(_args(model_dir, corpus, checkpointed, "--logging-steps", "1", "--gradient-checkpointing", "true")) == 0
    losses = [
        [
            h["loss"]
            for h in json.loads((d / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
            if "loss" in h
        ]
        for d in (plain, checkpointed)
    ]
    assert len(losses[1]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-4)
