"""Rank 0 tokenizes the corpus first and the other ranks then read its token cache (issue #31, item 6)."""

from __future__ import annotations

import contextlib

import pytest
from transformers import TrainingArguments

import longwin.data.pool
from longwin.cli import build_parser
from longwin.methods import get_method
from longwin.training.config import configs_from_args
from test_sharedllm_train_cli import _args as _sharedllm_args
from test_training import _train_args


class _Built(Exception):
    pass


@pytest.mark.parametrize("method", ["positions", "sharedllm"])
def test_the_pool_is_built_main_process_first(tiny_setup, tmp_path, monkeypatch, method):
    model_dir, corpus = tiny_setup
    state = {"inside": False, "seen": None}

    @contextlib.contextmanager
    def first(self, local=True, desc="work"):
        state["inside"] = True
        yield
        state["inside"] = False

    def pool(*args, **kwargs):
        state["seen"] = state["inside"]
        raise _Built

    monkeypatch.setattr(TrainingArguments, "main_process_first", first)
    monkeypatch.setattr(longwin.data.pool, "build_pool", pool)
    argv = (_train_args if method == "positions" else _sharedllm_args)(model_dir, corpus, tmp_path / "out")
    parser, _ = build_parser()
    config, targs = configs_from_args(parser.parse_args(argv))
    with pytest.raises(_Built):
        get_method(config.common.method).build(config, targs)
    assert state["seen"] is True
