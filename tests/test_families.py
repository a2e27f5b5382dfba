"""The family matrix: every claim of `longwin.models.families` checked on a tiny random model of the family.

A supported feature must reproduce the model's own numbers; a refused one must fail with a one-line
LongwinError naming the registry's reason, raised by the code that refuses it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import make_tiny_family, tiny_family_config
from longwin import positions
from longwin.errors import LongwinError
from longwin.eval.model import CausalLMAdapter
from longwin.models import loss as chunked
from longwin.models.families import FAMILIES, Family, installed
from longwin.rope import describe_rope, scale_rope

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
TARGET = 256  # 4x the tiny models' 64-token window
ROPE_METHODS = ["yarn", "linear", "revised-yarn"]


def _params(family: Family):
    mark = pytest.mark.skip(reason=f"transformers has no {family.model_class}")
    return pytest.param(family, id=family.model_type, marks=() if installed(family) else (mark,))


FAMILY_PARAMS = [_params(f) for f in FAMILIES]


def _one_line(error: pytest.ExceptionInfo, reason: str) -> None:
    assert reason in str(error.value) and "\n" not in str(error.value)


def _ids(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 320, shape, generator=torch.Generator().manual_seed(seed))


def _long_model(family: Family) -> tuple[torch.nn.Module, int]:
    """The family's tiny model with (revised) YaRN to TARGET where it takes one, else the native model; its window."""
    config = tiny_family_config(family)
    for method in ("yarn", "revised-yarn"):
        if not family.refusal(method):
            return make_tiny_family(family, config=scale_rope(config, method, TARGET)), TARGET
    return make_tiny_family(family, config=config), config.max_position_embeddings


@pytest.mark.parametrize("method", ROPE_METHODS)
@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_rope_scaling_survives_a_stock_reload(family, method, tmp_path):
    config = tiny_family_config(family)
    reason = family.refusal(method)
    if reason:
        with pytest.raises(LongwinError) as error:
            scale_rope(config, method, TARGET)
        _one_line(error, reason)
        return
    scaled = scale_rope(config, method, TARGET)
    model = make_tiny_family(family, config=scaled)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.rope_parameters == scaled.rope_parameters
    assert describe_rope(reloaded.config) == describe_rope(scaled)
    x, past_window = _ids(1, 20), torch.arange(100, 120)[None]
    with torch.no_grad():
        logits = model(input_ids=x, position_ids=past_window).logits
        assert torch.equal(reloaded(input_ids=x, position_ids=past_window).logits, logits)
        native = make_tiny_family(family, config=config)(input_ids=x, position_ids=past_window).logits
    assert not torch.allclose(native, logits)  # the family's forward does read the scaled RoPE


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_chunked_loss_on_cream_positions_equals_the_models_own(family):
    model, window = _long_model(family)
    reason = family.refusal("chunked_loss")
    if reason:
        assert reason in chunked.chunked_loss_problem(model)
        return
    reach = min(window, 128)  # CREAM's continuity head and tail must fit in the 48 trained tokens
    position_ids = torch.stack([positions.sample("cream", 48, reach, seed=s) for s in (0, 1)])
    assert position_ids.max() >= 64 or window == 64  # past the native window where the model is scaled
    labels = _ids(2, 48)
    labels[0, :5] = -100
    # the all-ones mask, as training passes it: without one transformers reads CREAM's jumps as packed sequences
    inputs = {"input_ids": _ids(2, 48), "labels": labels, "position_ids": position_ids, "attention_mask": labels > -2}
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


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_eval_perplexity_nll_equals_the_models_own_loss(family, tiny_tokenizer):
    model, _ = _long_model(family)
    ids = _ids(1, 40, seed=3)
    adapter = CausalLMAdapter(model, tiny_tokenizer, logits_chunk=16)
    reason = family.refusal("eval_nll")
    if reason:
        with pytest.raises(LongwinError) as error:
            adapter.token_nll(ids[0].tolist(), 10)
        _one_line(error, reason)
        return
    losses = adapter.token_nll(ids[0].tolist(), 10)
    total, count = float(losses.sum()), len(losses)
    labels = ids.clone()
    labels[0, :10] = -100
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss
    assert count == 30
    assert total == pytest.approx(loss.item() * count, rel=1e-5)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_sharedllm_runs_over_context_trees_or_refuses(family):
    from longwin.methods.sharedllm import SharedLLMForCausalLM

    base = make_tiny_family(family)
    options = dict(num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4)
    reason = family.refusal("sharedllm")
    if reason:
        with pytest.raises(LongwinError) as error:
            SharedLLMForCausalLM.from_base(base, **options)
        _one_line(error, reason)
        return
    model = SharedLLMForCausalLM.from_base(base, **options)
    with torch.no_grad():
        out = model(input_ids=_ids(2, 12), context_input_ids=_ids(2, 100, seed=1))
    assert out.logits.shape == (2, 12, 320) and torch.isfinite(out.logits).all()
    assert out.tree_kv.num_keys == 3 * (2 + 1) * 4  # 3 whole chunks of 32, (height + 1) levels of 4 keys each


def test_the_readme_table_is_the_generated_one():
    spec = importlib.util.spec_from_file_location("families_table", ROOT / "scripts" / "families_table.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    readme = (ROOT / "README.md").read_text()
    assert script.replace_block(readme, script.table()) == readme, "run python3 scripts/families_table.py --write"
