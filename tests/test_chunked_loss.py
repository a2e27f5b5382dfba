"""The chunked causal-LM loss equals the model's own loss and gradients, and training with it matches."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import bf16_step_dtypes, make_tiny_llama
from longwin.cli import main
from longwin.models import loss as chunked


def _reference(hidden, weight, targets):
    logits = hidden @ weight.T
    return torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 40),
    vocab=st.integers(2, 60),
    dim=st.integers(1, 12),
    chunk=st.integers(1, 50),
    ignored=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_sum_and_gradients_match_the_full_logits(rows, vocab, dim, chunk, ignored, seed):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, dim, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, dim, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, vocab, (rows,), generator=g)
    targets[torch.rand(rows, generator=g) < ignored] = -100
    ours = chunked.linear_cross_entropy(hidden, weight, targets, chunk)  # one row to all rows at once
    ours_grads = torch.autograd.grad(ours * 1.7, (hidden, weight))
    ref = _reference(hidden, weight, targets)
    ref_grads = torch.autograd.grad(ref * 1.7, (hidden, weight))
    torch.testing.assert_close(ours, ref)
    for a, b in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_a_frozen_weight_gets_no_gradient_and_the_hidden_one_is_unchanged():
    hidden = torch.randn(7, 4, requires_grad=True)
    weight = torch.randn(11, 4)
    targets = torch.randint(0, 11, (7,))
    (ours,) = torch.autograd.grad(chunked.linear_cross_entropy(hidden, weight, targets), (hidden,))
    (ref,) = torch.autograd.grad(_reference(hidden, weight, targets), (hidden,))
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("num_items", [None, 37])
def test_equals_the_models_own_loss_and_gradients(num_items, one_thread):
    model = make_tiny_llama(max_position_embeddings=64).train()
    ids = torch.randint(3, 320, (2, 24))
    labels = ids.clone()
    labels[0, :5] = -100
    inputs = {"input_ids": ids, "labels": labels, "position_ids": torch.arange(24).expand(2, -1)}
    extra = {} if num_items is None else {"num_items_in_batch": num_items}
    ref = model(**inputs, **extra).loss
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    ours = chunked.causal_lm_loss(model, inputs, num_items)
    ours_grads = torch.autograd.grad(ours, list(model.parameters()))
    torch.testing.assert_close(ours, ref)
    for a, b in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_training_with_it_follows_the_same_loss_curve(tiny_setup, tmp_path, one_thread):
    from test_training import _train_args

    model_dir, corpus = tiny_setup
    curves = {}
    for flag in ("true", "false"):
        out = tmp_path / flag
        args = _train_args(model_dir, corpus, out, "--chunked-loss", flag, "--logging-steps", "1")
        assert main(args) == 0
        card = json.loads((out / "longwin_training.json").read_text())
        assert card["loss"] == ("chunked" if flag == "true" else "the model's (--chunked-loss false)")
        curves[flag] = card["final_loss"]
    assert curves["true"] == pytest.approx(curves["false"], rel=1e-5)


@pytest.mark.parametrize("chunked_loss", [True, False])
def test_mixed_precision_reaches_the_decoder(chunked_loss, tmp_path, one_thread):
    """Under `--bf16 true` with fp32 weights the Trainer's autocast wraps only the top model's forward; the
    chunked loss calls the decoder directly, so it must enter the same autocast, or the run silently trains in
    fp32 (on a GPU: the fp32 SDPA math kernel, several times the memory)."""
    from transformers import Trainer

    from longwin.training.chunked_loss import ChunkedLossTrainer

    model = make_tiny_llama(max_position_embeddings=64).train()
    ids = torch.randint(3, 320, (16,))
    data = [{"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}] * 2
    trainer_class = ChunkedLossTrainer if chunked_loss else Trainer
    assert bf16_step_dtypes(trainer_class, model, data, str(tmp_path), model=model) == {torch.bfloat16}
