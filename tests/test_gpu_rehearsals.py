"""GPU code paths rehearsed on the CPU: the one real GPU try died because a loss ran outside bf16 autocast and
SDPA fell back to its math kernel, so every path a GPU run takes is checked here for the conditions of the fast
kernels: bf16 matmuls, and attention that PyTorch's flash kernel (SDPA with no mask, is_causal=True, half
precision) or transformers' flash-attention integration (one sequence per example) can take."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, default_data_collator
from transformers import modeling_flash_attention_utils as fa_utils
from transformers.masking_utils import create_causal_mask, find_packed_sequence_indices

from conftest import make_tiny_llama
from longwin.cli import main
from longwin.data.pool import build_pool
from longwin.eval.model import CausalLMAdapter, Prompt
from longwin.methods.positions.dataset import PositionSchemeDataset
from longwin.serving.reload_check import PROBE_TOKENS
from longwin.training import chunked_loss

pytestmark = pytest.mark.usefixtures("one_thread")

_SDPA = F.scaled_dot_product_attention  # the real kernel, for the spy and the CPU stand-in of flash-attention


@dataclass(frozen=True)
class SdpaCall:
    """One SDPA call as the kernel dispatcher sees it. `dtype` is the output's: under autocast the query arrives
    in fp32 (RoPE multiplies by fp32 cos/sin) and autocast casts it below the Python call, as on CUDA."""

    no_mask: bool
    is_causal: bool
    q_len: int
    dtype: torch.dtype

    @property
    def flash_eligible(self) -> bool:
        return self.no_mask and self.is_causal and self.dtype in (torch.bfloat16, torch.float16)


@pytest.fixture
def sdpa_calls(monkeypatch: pytest.MonkeyPatch) -> list[SdpaCall]:
    """Every `torch.nn.functional.scaled_dot_product_attention` call (transformers' sdpa_attention_forward and
    SharedLLM look it up there at call time)."""
    calls: list[SdpaCall] = []

    def spy(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None, *args, **kwargs):
        out = _SDPA(query, key, value, attn_mask, *args, **kwargs)
        causal = kwargs.get("is_causal", args[1] if len(args) > 1 else False)
        calls.append(SdpaCall(attn_mask is None, bool(causal), query.shape[-2], out.dtype))
        return out

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


def _train(model_dir: Any, corpus: Any, out: Any, scheme: str, rope: str, batch: int = 2) -> int:
    return main(
        [
            "train", "--model", str(model_dir), "--data", str(corpus), "--target-length", "256",
            "--max-steps", "2", "--per-device-train-batch-size", str(batch), "--use-cpu", "true",
            "--bf16", "true", "--scheme", scheme, "--rope", rope, "--output-dir", str(out),
            "--learning-rate", "1e-3", "--save-steps", "100", "--disable-tqdm", "true",
        ]
    )  # fmt: skip


@pytest.fixture
def loss_dtypes(monkeypatch: pytest.MonkeyPatch) -> dict[str, set]:
    """Wraps the chunked loss: counts its calls and records the dtypes q_proj and down_proj of the first layer
    computed in while it ran (the decoder's matmuls in the training steps)."""
    seen: dict[str, set] = {"calls": set(), "q_proj": set(), "down_proj": set()}
    real = chunked_loss.causal_lm_loss
    hooked: set[int] = set()

    def wrapped(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        layer = model.model.layers[0]
        if id(model) not in hooked:
            hooked.add(id(model))
            layer.self_attn.q_proj.register_forward_hook(lambda m, a, out: seen["q_proj"].add(out.dtype))
            layer.mlp.down_proj.register_forward_hook(lambda m, a, out: seen["down_proj"].add(out.dtype))
        seen["calls"].add(len(seen["calls"]))
        return real(model, inputs, num_items_in_batch)

    monkeypatch.setattr(chunked_loss, "causal_lm_loss", wrapped)
    return seen


@pytest.mark.parametrize("scheme,rope", [("cream", "linear"), ("pose", "yarn"), ("none", "linear")])
def test_bf16_training_runs_flash_eligible_then_reloads_and_evaluates(
    tiny_setup, tmp_path, scheme, rope, sdpa_calls, loss_dtypes
):
    """`--bf16 true` through the real dataset, collator and ChunkedLossTrainer: every decoder matmul in bf16,
    every attention call flash-eligible; the saved folder loads in stock transformers with its RoPE scaling
    and `longwin eval` in bf16 + SDPA gives finite perplexity."""
    model_dir, corpus = tiny_setup
    out = tmp_path / "out"
    assert _train(model_dir, corpus, out, scheme, rope) == 0
    card = json.loads((out / "longwin_training.json").read_text())
    assert card["loss"] == "chunked" and card["steps"] == 2
    assert len(loss_dtypes["calls"]) == 2, "the chunked loss did not run every step"
    assert loss_dtypes["q_proj"] == loss_dtypes["down_proj"] == {torch.bfloat16}
    # 2 steps x 2 layers, each a batch of 2 full-length examples
    steps = [c for c in sdpa_calls if c.q_len != PROBE_TOKENS]  # the reload checks' probes are no training step
    assert len(steps) == 4 and all(c.flash_eligible and c.q_len == 64 for c in steps), sdpa_calls

    model = AutoModelForCausalLM.from_pretrained(out)
    params = getattr(model.config, "rope_parameters", None) or model.config.rope_scaling
    assert params["rope_type"] == rope and model.config.max_position_embeddings == 256
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.randint(3, 320, (1, 256))).logits).all()

    sdpa_calls.clear()
    report = tmp_path / "eval"
    argv = ["eval", "--model", str(out), "--task", "ppl,passkey", "--dtype", "bfloat16", "--attn-implementation",
            "sdpa", "--lengths", "256", "--out", str(report), "--samples", "1", "--depths", "0,100",
            "--max-new-tokens", "3", "--progress", "false"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((report / "results.json").read_text())
    ppl = results["tasks"]["ppl"]["series"]
    assert ppl and all(math.isfinite(v) and v > 1 for series in ppl.values() for v in series.values()), ppl
    assert results["tasks"]["passkey"]["cells"] == 2
    assert sdpa_calls and {c.dtype for c in sdpa_calls} == {torch.bfloat16}


def test_eval_nll_and_generate_prefill_are_flash_eligible(tiny_tokenizer, sdpa_calls):
    """`CausalLMAdapter.token_nll` and the prefill of a batch-1 `generate` in bf16: no mask, is_causal=True, bf16.
    Decoding steps after the prefill (q_len 1) run without is_causal, as flash-decoding does; not checked."""
    adapter = CausalLMAdapter(make_tiny_llama(max_position_embeddings=256).to(torch.bfloat16), tiny_tokenizer)
    ids = torch.randint(3, 320, (200,), generator=torch.Generator().manual_seed(0)).tolist()
    losses = adapter.token_nll(ids, 100)
    assert math.isfinite(float(losses.sum())) and len(losses) == 100
    assert len(sdpa_calls) == 2 and all(c.flash_eligible and c.q_len == 200 for c in sdpa_calls), sdpa_calls

    sdpa_calls.clear()
    adapter.generate([Prompt(ids=ids[:150], context_end=100)], max_new_tokens=3)
    prefill = [c for c in sdpa_calls if c.q_len > 1]
    assert len(prefill) == 2 and all(c.flash_eligible and c.q_len == 150 for c in prefill), sdpa_calls


def _batches(
    tiny_setup: Any, tokenizer: Any, scheme: str, batch: int, count: int = 48
) -> list[dict[str, torch.Tensor]]:
    """What the Trainer feeds the model: `PositionSchemeDataset` examples (window 64, target 256) collated by
    `default_data_collator`."""
    _, corpus = tiny_setup
    pool = build_pool(str(corpus), tokenizer, min_tokens=64, val_fraction=0.0, seed=0)
    data = PositionSchemeDataset(pool, scheme, train_len=64, target_len=256, num_samples=count, seed=0)
    return [default_data_collator([data[i + j] for j in range(batch)]) for i in range(0, count, batch)]


@pytest.mark.parametrize("scheme", ["cream", "pose", "randpos", "none"])
def test_every_scheme_reaches_attention_as_one_sequence_per_example(tiny_setup, tiny_tokenizer, scheme):
    """transformers 5.x reads a position jump as the start of a packed sequence: without a 2D mask the SDPA mask
    builder then masks CREAM's/PoSE's segments off from each other, and at batch 1 flash-attention's varlen path
    cuts the row at every repeat of the smallest position id. With what the collator really passes (an all-ones
    mask; ids strictly increasing, so they never go down and their smallest one comes once, first) the SDPA
    builder returns no mask (SDPA runs is_causal=True: flash kernel), the flash builder none either, and varlen
    sees one sequence."""
    sdpa_model, flash_model = make_tiny_llama(), make_tiny_llama()
    flash_model.config._attn_implementation = "flash_attention_2"  # only the mask builder reads it here
    embeds = torch.zeros(2, 64, 32)
    for batch in _batches(tiny_setup, tiny_tokenizer, scheme, batch=2):
        ids, mask = batch["position_ids"], batch["attention_mask"]
        assert bool((mask == 1).all()) and bool((ids.diff(dim=-1) > 0).all())
        for model in (sdpa_model, flash_model):
            assert create_causal_mask(model.config, embeds, mask, None, position_ids=ids) is None
        assert not fa_utils._is_packed_sequence(ids, batch_size=2)  # batch > 1: dense flash_attn_func
        for row in ids:  # batch 1: the varlen path whenever the ids jump, with one sequence
            (cu_seqlens, _), _ = fa_utils.prepare_fa_kwargs_from_position_ids(row[None])
            assert cu_seqlens.tolist() == [0, 64]
    # the reason for the all-ones mask: without it the jumps would split the examples into packed sequences
    split = [
        find_packed_sequence_indices(b["position_ids"]) is not None
        for b in _batches(tiny_setup, tiny_tokenizer, scheme, 2)
    ]
    assert any(split) == (scheme != "none")


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None, causal: bool) -> torch.Tensor:
    """Flash-attention's contract ([batch, seq, heads, dim], GQA by head count) computed by the real SDPA."""
    out = _SDPA(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal, scale=scale, enable_gqa=True)
    return out.transpose(1, 2)


@pytest.fixture
def cpu_flash_attention(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[int]]]:
    """transformers' flash_attention_2 path (mask builder, `_flash_attention_forward`, its varlen detection) with
    CPU stand-ins for the flash_attn kernels; returns the kernel calls as (kind, sequence lengths)."""
    calls: list[tuple[str, list[int]]] = []

    def flash_fn(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, deterministic=False, **_):
        calls.append(("dense", [q.shape[1]] * q.shape[0]))
        return _attend(q, k, v, softmax_scale, causal)

    def varlen_fn(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, dropout_p=0.0,
                  softmax_scale=None, causal=False, deterministic=False, **_):  # fmt: skip
        bounds = cu_seqlens_q.tolist()
        calls.append(("varlen", [b - a for a, b in zip(bounds, bounds[1:])]))
        pieces = [
            _attend(q[None, a:b], k[None, a:b], v[None, a:b], softmax_scale, causal)[0]
            for a, b in zip(bounds, bounds[1:])
        ]
        return torch.cat(pieces)

    kernels = (flash_fn, varlen_fn, None, fa_utils._pad_input, fa_utils._unpad_input)
    process = (fa_utils._lazy_define_process_function(varlen_fn), dict)
    monkeypatch.setattr(fa_utils, "lazy_import_flash_attention", lambda *args, **kwargs: (kernels, process))
    return calls


def _reference_logits(model: Any, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The tokens at their absolute positions in a long row whose other tokens are masked out (as in
    test_training.py::test_manipulated_position_ids_equal_reference_at_absolute_positions)."""
    length = int(pos[-1]) + 1
    long_ids = torch.full((1, length), 5)
    long_ids[0, pos] = ids
    visible = torch.zeros(length, dtype=torch.bool)
    visible[pos] = True
    mask = (torch.tril(torch.ones(length, length, dtype=torch.bool)) & visible[None, :])[None, None]
    mask4d = torch.zeros(1, 1, length, length).masked_fill(~mask, torch.finfo(torch.float32).min)
    return model(input_ids=long_ids, attention_mask=mask4d, use_cache=False).logits[0, pos]


@pytest.mark.parametrize("batch", [1, 2])
def test_flash_attention_path_sees_one_sequence_and_matches_the_reference(
    tiny_setup, tiny_tokenizer, cpu_flash_attention, batch
):
    """CREAM batches as the Trainer passes them, through transformers' flash-attention integration (the
    training forward: no KV cache): one kernel call per layer over whole 64-token examples, and the logits of
    the eager reference at absolute positions, for SDPA as for flash."""
    model = make_tiny_llama(max_position_embeddings=256)
    flash = make_tiny_llama(max_position_embeddings=256)
    flash.config._attn_implementation = "flash_attention_2"
    inputs = {
        k: v
        for k, v in _batches(tiny_setup, tiny_tokenizer, "cream", batch, count=2 * batch)[1].items()
        if k != "labels"
    }
    with torch.no_grad():
        got = flash(**inputs, use_cache=False).logits
        sdpa = model(**inputs, use_cache=False).logits
        ref = torch.stack([_reference_logits(model, i, p) for i, p in zip(inputs["input_ids"], inputs["position_ids"])])
    assert cpu_flash_attention == [("varlen" if batch == 1 else "dense", [64] * batch)] * 2
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sdpa, ref, atol=1e-4, rtol=1e-4)


def test_induction_supervision_runs_eager_attention_by_design(tiny_setup, tmp_path, sdpa_calls):
    """NOT flash-eligible, stated rather than skipped: `--induction-weight` trains with eager attention (its loss
    reads the attention probabilities, which no fused kernel returns), so no SDPA call happens in its steps; the
    saved model is back on the requested kernel."""
    model_dir, corpus = tiny_setup
    out = tmp_path / "out"
    argv = ["train", "--model", str(model_dir), "--data", str(corpus), "--target-length", "256", "--max-steps", "1",
            "--per-device-train-batch-size", "2", "--use-cpu", "true", "--bf16", "true", "--scheme", "cream",
            "--induction-weight", "0.1", "--output-dir", str(out), "--save-steps", "100",
            "--disable-tqdm", "true"]  # fmt: skip
    assert main(argv) == 0
    assert [c for c in sdpa_calls if c.q_len != PROBE_TOKENS] == []  # the final reload check's probe runs on sdpa
    assert json.loads((out / "longwin_training.json").read_text())["loss"] != "chunked"
    assert AutoModelForCausalLM.from_pretrained(out).config._attn_implementation == "sdpa"


def test_sharedllm_attention_kernels(sdpa_calls):
    """SharedLLM under bf16 autocast: the decoder's self-attention is flash-eligible (no mask, causal); the
    cross-attention into the trees is non-causal and unmasked when every sample has as many context chunks
    (PyTorch's flash kernel takes that too). NOT flash-eligible, by design: a batch whose samples have different
    chunk counts masks the missing chunks' keys (SDPA then runs its memory-efficient kernel); and the node
    encoder's layer M-2, whose only queries are a node's kept positions (kv_per_node of them, strided) attending
    causally to the whole node, passes that causal pattern as a mask (a small call: kv_per_node queries)."""
    from longwin.methods.sharedllm import SharedLLMForCausalLM

    model = SharedLLMForCausalLM.from_base(
        make_tiny_llama(layers=3), num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4
    )
    x = torch.randint(3, 320, (2, 12), generator=torch.Generator().manual_seed(0))
    context = torch.randint(3, 320, (2, 96), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=x, context_input_ids=context, use_cache=False)
        causal = [c for c in sdpa_calls if c.is_causal]
        cross = [c for c in sdpa_calls if not c.is_causal and c.q_len == x.shape[1]]
        kept = [c for c in sdpa_calls if c.q_len == model.config.kv_per_node]
        assert causal and all(c.flash_eligible for c in causal), sdpa_calls
        assert cross and all(c.no_mask and c.dtype == torch.bfloat16 for c in cross), sdpa_calls
        assert kept and all(not c.no_mask and not c.is_causal for c in kept), sdpa_calls

        sdpa_calls.clear()
        ragged = torch.ones_like(context)
        ragged[1, :40] = 0  # the second sample has 1 chunk of context, the first 3
        model(input_ids=x, context_input_ids=context, context_attention_mask=ragged, use_cache=False)
    cross = [c for c in sdpa_calls if not c.is_causal and c.q_len == 12]
    assert cross and not any(c.no_mask for c in cross), sdpa_calls
