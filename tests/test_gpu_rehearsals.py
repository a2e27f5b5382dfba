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
from longwin import positions
from longwin.cli import main
from longwin.eval.model import CausalLMAdapter, Prompt
from longwin.methods.positions.dataset import _example
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
    seen: dict[str, set] = {"calls": set(), "q_proj": set(), "down_proj": set(), "head_input": set()}
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
    assert len(sdpa_calls) == 4 and all(c.flash_eligible and c.q_len == 64 for c in sdpa_calls), sdpa_calls

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
    """`CausalLMAdapter.nll` and the prefill of a batch-1 `generate` in bf16: no mask, is_causal=True, bf16.
    Decoding steps after the prefill (q_len 1) run without is_causal, as flash-decoding does; not checked."""
    adapter = CausalLMAdapter(make_tiny_llama(max_position_embeddings=256).to(torch.bfloat16), tiny_tokenizer)
    ids = torch.randint(3, 320, (200,), generator=torch.Generator().manual_seed(0)).tolist()
    total, count = adapter.nll(ids, 100)
    assert math.isfinite(total) and count == 100
    assert len(sdpa_calls) == 2 and all(c.flash_eligible and c.q_len == 200 for c in sdpa_calls), sdpa_calls

    sdpa_calls.clear()
    adapter.generate([Prompt(ids=ids[:150], context_end=100)], max_new_tokens=3)
    prefill = [c for c in sdpa_calls if c.q_len > 1]
    assert len(prefill) == 2 and all(c.flash_eligible and c.q_len == 150 for c in prefill), sdpa_calls
