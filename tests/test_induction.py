"""Induction-head supervision: attention targets, the auxiliary loss, and its place in pretrain-toy."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_tiny_llama
from longwin.methods.induction import (
    InductionHeads,
    InductionSupervision,
    attention_loss,
    copy_accuracy,
    induction_targets,
    previous_token_targets,
    random_repeats,
)


def test_previous_token_target_puts_each_row_on_the_token_before():
    target = previous_token_targets(5)
    assert target.argmax(-1).tolist() == [0, 0, 1, 2, 3]
    assert torch.equal(target.sum(-1), torch.ones(5))
    assert previous_token_targets(5, offset=2).argmax(-1).tolist() == [0, 0, 0, 1, 2]


def test_two_token_induction_target_prefers_the_longer_match():
    ids = torch.tensor([[1, 5, 6, 9, 7, 6, 8, 5, 6]])
    assert induction_targets(ids, 1)[0, 8].nonzero().flatten().tolist() == [3, 6]  # any earlier 6
    assert induction_targets(ids, 2)[0, 8].nonzero().flatten().tolist() == [3]  # only "5 6"
    assert induction_targets(ids, 2)[0, 5].nonzero().flatten().tolist() == [3]  # one-token match is kept


def test_induction_target_points_after_earlier_occurrences_or_at_bos():
    ids = torch.tensor([[1, 5, 6, 5, 7, 5]])
    target = induction_targets(ids)[0]
    assert target[3].tolist() == [0, 0, 1, 0, 0, 0]  # 5 seen at 1: copy what followed it (pos 2)
    assert target[5].tolist() == [0, 0, 0.5, 0, 0.5, 0]  # 5 seen at 1 and 3: positions 2 and 4
    for row in (0, 1, 2, 4):  # first occurrences: the BOS sink
        assert target[row].tolist() == [1, 0, 0, 0, 0, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(3, 6), min_size=2, max_size=24))
def test_induction_targets_are_causal_distributions_on_matches(tokens):
    ids = torch.tensor([[1, *tokens]])
    target = induction_targets(ids)[0]
    assert torch.allclose(target.sum(-1), torch.ones(len(tokens) + 1))
    for i, row in enumerate(target):
        support = row.nonzero().flatten().tolist()
        matches = [j for j in range(1, i + 1) if ids[0, j - 1] == ids[0, i]]
        assert support == (matches or [0])
        assert all(j <= i for j in support)


def _suffix_match(ids: list[int], i: int, k: int, most: int) -> int:
    n = 0
    while n < most and k - n >= 0 and ids[i - n] == ids[k - n]:
        n += 1
    return n


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(3, 5), min_size=2, max_size=24), st.integers(1, 3))
def test_induction_targets_spread_over_the_longest_suffix_matches(tokens, match_len):
    ids = [1, *tokens]
    target = induction_targets(torch.tensor([ids]), match_len)[0]
    assert torch.allclose(target.sum(-1), torch.ones(len(ids)))
    for i, row in enumerate(target):
        scores = {k + 1: _suffix_match(ids, i, k, match_len) for k in range(i)}
        best = max(scores.values(), default=0)
        expected = [j for j, s in scores.items() if s == best] if best else [0]
        assert row.nonzero().flatten().tolist() == expected


def test_attention_loss_is_smallest_at_the_target():
    target = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    uniform = torch.full((2, 3), 1 / 3)
    assert attention_loss(target, target) < attention_loss(uniform, target)


def test_supervision_trains_only_the_named_heads_and_the_probe():
    model = make_tiny_llama(layers=2, heads=4, kv_heads=4, attn_implementation="eager").train()
    supervision = InductionSupervision(model.config.hidden_size, InductionHeads(match_len=2))
    ids = torch.randint(3, 320, (2, 20))
    outputs = model(ids, output_attentions=True, output_hidden_states=True)
    supervision(model, ids, outputs).backward()
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    upper_q = model.model.layers[1].self_attn.q_proj.weight.grad
    assert upper_q[:head_dim].abs().sum() > 0  # the induction head is trained
    assert upper_q[head_dim:].abs().sum() == 0  # the other heads of that layer are left alone
    assert all(probe.weight.grad.abs().sum() > 0 for probe in supervision.probes)


def test_supervision_targets_one_look_back_head_per_matched_token():
    model = make_tiny_llama(layers=2, heads=4, kv_heads=4, attn_implementation="eager")
    ids = torch.randint(3, 320, (2, 20))
    with torch.no_grad():
        outputs = model(ids, output_attentions=True, output_hidden_states=True)
    attentions = [a.clone().requires_grad_() for a in outputs.attentions]
    outputs.attentions = tuple(attentions)
    InductionSupervision(32, InductionHeads(match_len=2))(model, ids, outputs).backward()
    per_head = [a.grad.abs().sum((0, 2, 3)) for a in attentions]
    assert per_head[0][:2].gt(0).all() and per_head[0][2:].eq(0).all()  # heads 0, 1 of layer 0 look back
    assert per_head[1][0] > 0 and per_head[1][1:].eq(0).all()  # head 0 of layer 1 matches


def test_probe_save_and_load_round_trip(tmp_path):
    saved = InductionSupervision(16)
    saved.save(tmp_path)
    loaded = InductionSupervision(16)
    assert not InductionSupervision(16).load(tmp_path / "missing")
    assert loaded.load(tmp_path) and torch.equal(loaded.probes[0].weight, saved.probes[0].weight)


def test_copy_accuracy_scores_a_perfect_and_a_blind_copier(tiny_tokenizer):
    ids = random_repeats(tiny_tokenizer, rows=3, span=10, seed=0)
    assert ids.shape == (3, 21) and torch.equal(ids[:, 1:11], ids[:, 11:])
    assert ids[:, 1:].min() > max(tiny_tokenizer.all_special_ids)

    class Oracle(torch.nn.Module):  # predicts every next token right
        def forward(self, x):
            logits = torch.zeros(*x.shape, 320)
            logits[:, :-1].scatter_(-1, x[:, 1:, None], 1.0)
            return type("Out", (), {"logits": logits})

    assert copy_accuracy(Oracle(), ids, span=10) == 1.0
    assert copy_accuracy(make_tiny_llama(), ids, span=10) < 0.2


@pytest.mark.parametrize("weight", [1.0, 0.0])
def test_pretrain_toy_with_and_without_supervision_saves_a_stock_model(tmp_path, weight, monkeypatch):
    from transformers import AutoModelForCausalLM

    from longwin.jobs.pretrain_toy import PretrainToyConfig, pretrain
    from longwin.methods import induction

    cfg = PretrainToyConfig(
        output_dir=str(tmp_path / "model"),
        checkpoint_dir=str(tmp_path / "ck"),
        seq_len=64,
        vocab_size=400,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        max_steps=2,
        batch_size=2,
        warmup_steps=1,
        induction_weight=weight,
        induction_match=2,
        random_copy_share=0.05,
        threads=1,
    )
    out = pretrain(cfg)
    card = json.loads((out / "training.json").read_text())
    assert 0.0 <= card["random_span_copy_top1"] <= 1.0
    assert (tmp_path / "ck" / "checkpoint-2" / "induction_probe.pt").exists() == bool(weight)
    model = AutoModelForCausalLM.from_pretrained(out)  # the probe is not part of the saved model
    assert model.config._attn_implementation == "sdpa"
    assert "probe" not in " ".join(n for n, _ in model.named_parameters())
    if weight:  # a resumed run picks the probe up from the last checkpoint
        loaded = []
        monkeypatch.setattr(
            induction.InductionSupervision, "load", lambda self, folder: loaded.append(str(folder)) or True
        )
        pretrain(PretrainToyConfig(**{**cfg.__dict__, "max_steps": 3}))
        assert loaded == [str(tmp_path / "ck" / "checkpoint-2")]


@pytest.mark.parametrize(
    "bad",
    [
        {"random_copy_share": 0.5},
        {"random_copy_share": -0.1},
        {"induction_match": 0},
        {"induction_match": 7},
        {"recall_share": 0.3},
    ],
)
def test_pretrain_toy_rejects_out_of_range_induction_options(bad):
    from longwin.errors import LongwinError
    from longwin.jobs.pretrain_toy import PretrainToyConfig, validated_mix

    with pytest.raises(LongwinError, match="must lie in"):
        validated_mix(PretrainToyConfig(**bad))
