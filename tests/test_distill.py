"""Positional self-distillation: the KL term, its equivalence to plain training where positions do not move,
and the training CLI with --distill-weight."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, TrainingArguments

from conftest import bf16_step_dtypes, make_tiny_llama
from longwin.cli import main
from longwin.methods.distill import distill_kl, distill_trainer
from test_training import _train_args


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(2, 9), st.integers(0, 2**16))
def test_kl_is_zero_for_equal_logits_and_positive_otherwise(batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, 11, generator=g)
    labels = torch.randint(0, 11, (batch, length), generator=g)
    assert distill_kl(logits, logits.clone(), labels).item() == pytest.approx(0.0, abs=1e-6)
    other = logits + torch.randn(batch, length, 11, generator=g)
    assert distill_kl(other, logits, labels).item() > 0


def test_kl_counts_only_predicted_tokens_the_labels_keep():
    """Token i predicts labels[i + 1]: a masked label leaves the logits before it out of the mean."""
    logits = torch.zeros(1, 4, 5)
    teacher = logits.clone()
    teacher[0, 1] = torch.tensor([4.0, 0, 0, 0, 0])  # differs only where the next label is masked
    labels = torch.tensor([[1, 2, -100, 3]])
    assert distill_kl(logits, teacher, labels).item() == pytest.approx(0.0, abs=1e-7)
    labels[0, 2] = 2
    expected = torch.nn.functional.kl_div(
        torch.log_softmax(logits[0, 1], -1), torch.log_softmax(teacher[0, 1], -1), log_target=True, reduction="sum"
    )
    assert distill_kl(logits, teacher, labels).item() == pytest.approx(expected.item() / 3, rel=1e-5)
    assert distill_kl(logits, teacher, torch.full((1, 4), -100)).item() == 0.0


def _position_sensitive_llama():
    """A tiny Llama with sharp attention and logits, so that where the tokens sit changes its predictions."""
    model = make_tiny_llama(max_position_embeddings=64)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
        model.model.embed_tokens.weight.mul_(4)  # tied: the output projection too
    return model


def _loss(trainer_class, model, inputs, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    return trainer_class(model=model, args=args).compute_loss(model, inputs).item()


def test_distill_changes_nothing_where_positions_are_the_base_ones(tmp_path):
    """Student = teacher and position ids 0..T-1: the loss is the plain LM loss. Moved position ids: the KL term
    is what separates them."""
    from transformers import Trainer

    model = _position_sensitive_llama()
    teacher = copy.deepcopy(model)
    ids = torch.randint(3, 320, (2, 16), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    inputs["position_ids"] = torch.arange(16).expand(2, 16)
    plain = _loss(Trainer, model, inputs, tmp_path)
    assert _loss(distill_trainer(teacher, 1.0), model, inputs, tmp_path) == pytest.approx(plain, rel=1e-6)
    moved = {**inputs, "position_ids": torch.arange(16).expand(2, 16) * 3 + 5}
    plain_moved = _loss(Trainer, model, moved, tmp_path)
    with torch.no_grad():  # the KL of the moved student against the teacher at 0..T-1, computed here directly
        student = torch.log_softmax(model(**{k: v for k, v in moved.items() if k != "labels"}).logits[:, :-1], -1)
        target = torch.log_softmax(teacher(ids, attention_mask=moved["attention_mask"]).logits[:, :-1], -1)
    kl = (target.exp() * (target - student)).sum(-1).mean().item()
    assert kl > 1e-5  # the moved positions change the predictions
    assert _loss(distill_trainer(teacher, 2.0), model, moved, tmp_path) == pytest.approx(plain_moved + 2 * kl, rel=1e-5)


def test_train_cli_with_distillation_saves_a_stock_model(tiny_setup, tmp_path, capsys):
    model_dir, corpus = tiny_setup
    plain, distilled = tmp_path / "plain", tmp_path / "distilled"
    assert main(_train_args(model_dir, corpus, plain)) == 0
    assert main(_train_args(model_dir, corpus, distilled, "--distill-weight", "1")) == 0
    cards = [json.loads((d / "longwin_training.json").read_text()) for d in (plain, distilled)]
    assert cards[1]["loss"] == "DistillTrainer's" and cards[1]["extend_config"]["positions"]["distill_weight"] == 1
    assert cards[0]["final_loss"] != cards[1]["final_loss"]
    AutoModelForCausalLM.from_pretrained(distilled)
    assert main(_train_args(model_dir, corpus, tmp_path / "x", "--distill-weight", "1", "--induction-weight", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("longwin train: error:") and "cannot be combined" in err
    assert not (tmp_path / "x" / "longwin_training.json").exists()


def test_kl_share_follows_the_lm_loss_under_gradient_accumulation(tmp_path):
    """With the step's token count given (the Trainer's gradient-accumulation path) the LM loss is a share of the
    whole step and is not divided again, so each micro-batch's KL mean must count 1 / accumulation steps."""
    from transformers import Trainer

    model = _position_sensitive_llama()
    teacher = copy.deepcopy(model)
    ids = torch.randint(3, 320, (1, 16), generator=torch.Generator().manual_seed(1))
    moved = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    moved["position_ids"] = torch.arange(16)[None] * 3 + 5
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, gradient_accumulation_steps=2)
    items = torch.tensor(30)
    plain = Trainer(model=model, args=args).compute_loss(model, moved, num_items_in_batch=items).item()
    distilled = distill_trainer(teacher, 4.0)(model=model, args=args)
    with torch.no_grad():
        logits = model(**{k: v for k, v in moved.items() if k != "labels"}).logits
        kl = distill_kl(logits, teacher(ids, attention_mask=moved["attention_mask"]).logits, ids).item()
    got = distilled.compute_loss(model, moved, num_items_in_batch=items).item()
    assert 4.0 * kl / 2 > 1e-4 * plain  # ten times the tolerance below: it tells the shares apart
    assert got == pytest.approx(plain + 4.0 * kl / 2, rel=1e-5)


def test_teacher_runs_under_the_trainers_mixed_precision(tmp_path):
    """The teacher is no part of the prepared model, so the Trainer's bf16 autocast must be entered for it."""
    model, teacher = make_tiny_llama(max_position_embeddings=64).train(), make_tiny_llama(max_position_embeddings=64)
    ids = torch.randint(3, 320, (16,))
    data = [{"input_ids": ids, "labels": ids.clone(), "position_ids": torch.arange(16) * 2}] * 2
    trainer_class = distill_trainer(teacher, 1.0)
    assert bf16_step_dtypes(trainer_class, teacher, data, str(tmp_path), model=model) == {torch.bfloat16}
