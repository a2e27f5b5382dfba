"""One spelling per SharedLLM option across `longwin train`, `longwin bench sharedllm` and `longwin eval`, and the
local window a model was trained with travelling in its config from training to evaluation."""

from __future__ import annotations

import argparse

import pytest
from transformers import AutoModelForCausalLM

from conftest import make_tiny_llama
from longwin.cli import build_parser
from longwin.eval.adapters import ADAPTER_OPTIONS, resolve_model
from longwin.eval.sharedllm_adapter import SharedLLMAdapter
from longwin.methods.sharedllm import SharedLLMConfig, SharedLLMForCausalLM

pytestmark = pytest.mark.usefixtures("one_thread")

# the concepts both training and the benchmark take, spelled as training spells them
SHARED = ["--sharedllm-lower-layers", "--sharedllm-chunk-size", "--sharedllm-tree-height", "--sharedllm-kv-per-node"]
SHARED += ["--sharedllm-local-length"]
OLD = ["--num-lower-layers", "--lower-layers", "--chunk-size", "--tree-height", "--kv-per-node", "--local-window"]
OLD += ["--bounded-batch-tokens", "--local-length"]
TINY = dict(num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4)


def _flags(*path: str) -> set[str]:
    """Every option string of the subcommand `longwin <path...>`."""
    parser: argparse.ArgumentParser = build_parser()[0]
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {s for action in parser._actions for s in action.option_strings}


@pytest.mark.parametrize("command", [("train",), ("bench", "sharedllm")])
def test_train_and_bench_spell_each_sharedllm_option_the_same_way(command):
    flags = _flags(*command)
    assert set(SHARED) <= flags
    assert not set(OLD) & flags


def test_the_eval_adapter_option_is_the_training_name_and_the_old_one_still_reads(tiny_tokenizer):
    assert set(ADAPTER_OPTIONS[SharedLLMAdapter]) == {"local_length", "trees"}
    model = SharedLLMForCausalLM.from_base(make_tiny_llama(layers=3), **TINY)
    for key in ("local_length", "local_window"):
        adapter = resolve_model(model, tiny_tokenizer, "m", {key: 24})
        assert isinstance(adapter, SharedLLMAdapter) and adapter.local_length == 24


def test_the_trained_local_window_round_trips_through_the_config_and_the_adapter_reads_it(tmp_path, tiny_tokenizer):
    model = SharedLLMForCausalLM.from_base(make_tiny_llama(layers=3), **TINY)
    assert model.config.local_length == 0 and SharedLLMAdapter(model, tiny_tokenizer).local_length == 64  # native
    model.config.local_length = 40
    model.save_pretrained(tmp_path)
    assert SharedLLMConfig.from_pretrained(tmp_path).local_length == 40
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.local_length == 40
    assert SharedLLMAdapter(loaded, tiny_tokenizer).local_length == 40
    assert SharedLLMAdapter(loaded, tiny_tokenizer, local_length=24).local_length == 24  # the option still wins


def test_recording_the_local_window_keeps_the_cache_digest_of_older_folders():
    """Folders saved before `local_length` was recorded keep their cached results; the window the adapter
    uses is part of its own settings."""
    from longwin.eval.model import model_digest

    model = SharedLLMForCausalLM.from_base(make_tiny_llama(layers=3), **TINY)
    before = model_digest(model)
    model.config.local_length = 40
    assert model_digest(model) == before
