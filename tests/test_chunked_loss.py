"""The chunked causal-LM loss equals the model's own loss and gradients, and training with it matches."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import bf16_step_dtypes, make_tiny_family, make_tiny_llama
from longwin.cli import main
from longwin.models import loss as chunked
from longwin.models.families import FAMILIES


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


_SCALED = [f for f in FAMILIES if f.model_type in ("granite", "cohere", "falcon_h1", "gemma2")]


@pytest.mark.parametrize("family", _SCALED, ids=lambda f: f.model_type)
def test_scaled_or_capped_logits_give_the_models_own_loss_and_gradients(family, one_thread):
    """Granite divides the logits by `logits_scaling`, Cohere and FalconH1 multiply them, Gemma2 soft-caps them:
    the chunked loss must do the same (it once ignored the scales and refused Cohere and Gemma2)."""
    model = make_tiny_family(family)  # eval mode: FalconH1 and GPT-2 have dropout
    ids = torch.randint(3, 320, (2, 24), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[1, :7] = -100
    inputs = {"input_ids": ids, "labels": labels}
    params = [p for p in model.parameters() if p.requires_grad]
    ref = model(**inputs).loss
    ref_grads = torch.autograd.grad(ref, params, allow_unused=True)
    assert chunked.chunked_loss_problem(model) is None
    ours = chunked.causal_lm_loss(model, inputs)
    ours_grads = torch.autograd.grad(ours, params, allow_unused=True)
    torch.testing.assert_close(ours, ref)
    for a, b in zip(ours_grads, ref_grads, strict=True):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", _SCALED, ids=lambda f: f.model_type)
def test_eval_nll_equals_the_loss_from_the_full_logits(family, tiny_tokenizer, one_thread):
    from longwin.eval.model import CausalLMAdapter

    model = make_tiny_family(family)
    ids = torch.randint(3, 320, (30,), generator=torch.Generator().manual_seed(2))
    losses = CausalLMAdapter(model, tiny_tokenizer, logits_chunk=7).token_nll(ids.tolist(), 5)
    total, count = float(losses.sum()), len(losses)
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0].float()
    ref = torch.nn.functional.cross_entropy(logits[4:-1], ids[5:], reduction="sum")
    assert count == 25
    assert total == pytest.approx(ref.item(), rel=1e-5)


def test_an_unknown_logit_scale_is_refused_in_one_line(tiny_tokenizer):
    """A family whose scaling longwin has not read (here: a config claiming MiniCPM3's `logits_scaling`) gets the
    model's own loss in training and a one-line refusal from the eval perplexity, never a silently wrong number."""
    from longwin.errors import LongwinError
    from longwin.eval.model import CausalLMAdapter

    model = make_tiny_llama()
    model.config.model_type = "minicpm3"
    model.config.logits_scaling = 8.0
    assert "minicpm3" in chunked.chunked_loss_problem(model) and "logits_scaling" in chunked.chunked_loss_problem(model)
    with pytest.raises(LongwinError, match="logits_scaling") as caught:
        CausalLMAdapter(model, tiny_tokenizer).token_nll([5, 6, 7, 8], 1)
    assert "\n" not in str(caught.value)


def _ops_seen(fn) -> list[tuple[str, list[torch.Tensor]]]:
    """(op name, tensor arguments) of every aten op `fn()` runs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: list[tuple[str, list[torch.Tensor]]] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            flat = [*args, *(kwargs or {}).values(), out]
            seen.append((str(func), [t for t in flat if isinstance(t, torch.Tensor)]))
            return out

    with Record():
        fn()
    return seen


def test_every_tensor_stays_on_the_hidden_states_device():
    """On CUDA a CPU index tensor (the one-hot subtraction's row index) is a host-to-device copy per chunk."""
    hidden = torch.randn(12, 4, device="meta", requires_grad=True)
    weight = torch.randn(9, 4, device="meta", requires_grad=True)
    targets = torch.randint(0, 9, (12,), device="meta")
    ops = _ops_seen(lambda: chunked.linear_cross_entropy(hidden, weight, targets, 5))
    elsewhere = {name for name, tensors in ops for t in tensors if t.device.type != "meta"}
    assert not elsewhere


def test_a_half_precision_weight_gradient_is_multiplied_in_half_precision():
    """fp32 GEMMs on a GPU run without tensor cores (unless TF32 is on); the weight gradient of bf16 inputs is
    multiplied in bf16 (fp32 accumulation inside the GEMM) and only summed over chunks in fp32."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(40, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (40,), generator=g)
    h16, w16 = hidden.detach().bfloat16().requires_grad_(), weight.detach().bfloat16().requires_grad_()
    loss: list[torch.Tensor] = []
    ops = _ops_seen(lambda: loss.append(chunked.linear_cross_entropy(h16, w16, targets, 8)))
    matmuls = [tensors for name, tensors in ops if name.split(".")[1] in ("mm", "addmm", "addmm_", "bmm", "matmul")]
    factors = [t for tensors in matmuls for t in tensors[-3:-1]]  # the two factors; the output comes last
    assert matmuls and all(t.dtype == torch.bfloat16 for t in factors)
    (grad_weight,) = torch.autograd.grad(loss[0], (w16,))
    (ref,) = torch.autograd.grad(_reference(hidden, weight, targets), (weight,))
    torch.testing.assert_close(grad_weight.double(), ref, rtol=0.02, atol=0.02)
