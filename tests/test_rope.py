"""scale_rope writes stock-transformers RoPE configs whose loaded frequencies match each method's definition.

Expected frequencies are computed here from the methods' definitions, independently of transformers.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, LlamaForCausalLM, MistralConfig, Qwen2Config
from transformers.utils import logging as hf_logging

from conftest import make_tiny_llama
from longwin.errors import LongwinError
from longwin.rope import SUPPORTED_METHODS, describe_rope, native_window, scale_rope

V5 = isinstance(getattr(LlamaConfig(), "rope_parameters", None), dict)


def _llama(native: int = 4096, theta: float = 1e4) -> LlamaConfig:
    """Llama-2 geometry (head_dim 128, base 1e4) in a one-layer model small enough to build."""
    return LlamaConfig(
        vocab_size=320,
        hidden_size=256,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=native,
        rope_theta=theta,
        tie_word_embeddings=True,
    )


def _qwen2(native: int = 2048, theta: float = 1e6) -> Qwen2Config:
    """Qwen2 geometry with head_dim 64 and base 1e6."""
    return Qwen2Config(
        vocab_size=320,
        hidden_size=128,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=native,
        rope_theta=theta,
        tie_word_embeddings=True,
    )


def _inv_freq(theta: float, dim: int) -> torch.Tensor:
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def _revised_yarn(
    theta: float,
    dim: int,
    native: int,
    s: float,
    beta_fast: float = 32,
    beta_slow: float = 1,
    attention_factor: float | None = None,
) -> tuple[np.ndarray, float]:
    """CREAM/PoSE revised YaRN straight from its definition: inv_freq_i / ((1 - gamma_i) s + gamma_i)."""
    inv = theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    corr = [dim * math.log(native / (2 * math.pi * beta)) / (2 * math.log(theta)) for beta in (beta_fast, beta_slow)]
    low, high = max(math.floor(corr[0]), 0), min(math.ceil(corr[1]), dim - 1)
    gamma = 1 - np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)  # 1: keep the frequency, 0: divide by s
    return inv / ((1 - gamma) * s + gamma), attention_factor or 0.1 * math.log(s) + 1


def _expected(method: str, theta: float, dim: int, native: int, s: float, **opt) -> tuple[torch.Tensor, float]:
    """(inv_freq, attention scaling) as each method defines them, at lengths up to the native window."""
    inv = _inv_freq(theta, dim)
    if method in ("none", "dynamic"):  # dynamic only departs once the sequence outgrows the native window
        return inv, 1.0
    if method == "linear":
        return inv / s, 1.0
    if method == "ntk":
        return _inv_freq(theta * s ** (dim / (dim - 2)), dim), 1.0
    if method == "revised-yarn":
        revised, attention = _revised_yarn(theta, dim, native, s, **opt)
        return torch.from_numpy(revised), attention
    if method == "yarn":

        def correction_dim(rotations: float) -> float:  # dim index whose wavelength fits `rotations` times in N
            return dim * math.log(native / (2 * math.pi * rotations)) / (2 * math.log(theta))

        low = max(math.floor(correction_dim(opt.get("beta_fast", 32))), 0)
        high = min(math.ceil(correction_dim(opt.get("beta_slow", 1))), dim - 1)
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        return inv * (1 - ramp) + (inv / s) * ramp, opt.get("attention_factor", 0.1 * math.log(s) + 1)
    assert method == "llama3"
    lo, hi = opt.get("low_freq_factor", 1.0), opt.get("high_freq_factor", 4.0)
    wavelen = 2 * math.pi / inv
    smooth = (native / wavelen - lo) / (hi - lo)
    blended = (1 - smooth) * inv / s + smooth * inv
    out = torch.where(wavelen > native / lo, inv / s, blended)
    return torch.where(wavelen < native / hi, inv, out), 1.0


@pytest.fixture
def hf_warnings(caplog):
    """Warnings transformers logs (its loggers do not propagate by default)."""
    hf_logging.enable_propagation()
    caplog.set_level(logging.WARNING, logger="transformers")
    yield caplog
    hf_logging.disable_propagation()


CASES = [
    ("none", {}),
    ("linear", {}),
    ("ntk", {}),
    ("dynamic", {}),
    ("yarn", {}),
    ("yarn", {"beta_fast": 16, "beta_slow": 2, "attention_factor": 1.5}),
    ("revised-yarn", {}),
    ("revised-yarn", {"beta_fast": 16, "beta_slow": 2, "attention_factor": 1.5}),
    ("llama3", {}),
    ("llama3", {"low_freq_factor": 2, "high_freq_factor": 8}),
]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize(("method", "options"), CASES)
def test_round_trip_through_stock_transformers_matches_definition(tmp_path, hf_warnings, family, method, options):
    config, dim, theta = (_llama(), 128, 1e4) if family == "llama" else (_qwen2(), 64, 1e6)
    native = config.max_position_embeddings
    target = native * 8
    scaled = scale_rope(config, method, target, **options)
    AutoModelForCausalLM.from_config(scaled).save_pretrained(tmp_path)
    hf_warnings.clear()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)

    rotary = loaded.model.rotary_emb
    inv, attention = _expected(method, theta, dim, native, 8.0, **options)
    torch.testing.assert_close(rotary.inv_freq.double(), inv, rtol=1e-5, atol=0)
    assert rotary.attention_scaling == pytest.approx(attention)
    assert loaded.config.max_position_embeddings == (native if method == "dynamic" else target)
    assert not [r.message for r in hf_warnings.records if "rope" in r.getMessage().lower()]

    saved = json.loads((tmp_path / "config.json").read_text())
    assert "auto_map" not in saved
    rope = saved["rope_parameters"] if V5 else {**(saved["rope_scaling"] or {}), "rope_theta": saved["rope_theta"]}
    assert rope.get("rope_type", "default") == {"none": "default", "ntk": "default", "revised-yarn": "longrope"}.get(
        method, method
    )
    if method in ("yarn", "revised-yarn", "llama3"):
        assert rope["original_max_position_embeddings"] == native and rope["factor"] == 8.0


def test_none_keeps_frequencies_and_only_raises_max_positions():
    config = _llama(native=64)
    scaled = scale_rope(config, "none", 256)
    base = LlamaForCausalLM(config).model.rotary_emb
    ext = LlamaForCausalLM(scaled).model.rotary_emb
    assert torch.equal(base.inv_freq, ext.inv_freq) and ext.attention_scaling == base.attention_scaling
    assert scaled.max_position_embeddings == 256
    assert describe_rope(scaled)["method"] == "none" and native_window(scaled) == 64


@pytest.mark.parametrize(("s", "base"), [(4, 40_890), (8, 82_685), (16, 167_199), (32, 338_097), (64, 683_675)])
def test_ntk_base_matches_cream_llama2_table(s, base):
    """CREAM reference code (docs/rope.md): static NTK base b' = 1e4 * s^(128/126) for Llama-2-7B (d=128)."""
    scaled = scale_rope(_llama(), "ntk", 4096 * s)
    assert describe_rope(scaled)["rope_theta"] == pytest.approx(base, abs=1)
    assert describe_rope(scaled)["method"] == "ntk" and describe_rope(scaled)["rope_type"] == "default"


def test_yarn_llama2_correction_range_and_mscale():
    """CREAM reference code (docs/rope.md): for N=4096, d=128, b=1e4 dims i<=20 are unchanged, i>=46 divided
    by s; mscale 1.208 at s=8."""
    rotary = LlamaForCausalLM(scale_rope(_llama(), "yarn", 32768)).model.rotary_emb
    ratio = _inv_freq(1e4, 128) / rotary.inv_freq.double()
    torch.testing.assert_close(ratio[:21], torch.ones(21, dtype=torch.float64), rtol=1e-5, atol=0)
    torch.testing.assert_close(ratio[46:], torch.full((18,), 8.0, dtype=torch.float64), rtol=1e-5, atol=0)
    assert ((ratio[21:46] > 1) & (ratio[21:46] < 8)).all()
    assert rotary.attention_scaling == pytest.approx(1.208, abs=1e-3)


def test_dynamic_changes_base_only_past_native_window():
    model = LlamaForCausalLM(scale_rope(_llama(native=64), "dynamic", 256))
    rotary = model.model.rotary_emb
    x = torch.zeros(1, 1, 128)
    rotary(x, torch.arange(64)[None])
    torch.testing.assert_close(rotary.inv_freq.double(), _inv_freq(1e4, 128), rtol=1e-5, atol=0)
    length, s = 200, 4.0
    rotary(x, torch.arange(length)[None])
    grown = 1e4 * (s * length / 64 - (s - 1)) ** (128 / 126)
    torch.testing.assert_close(rotary.inv_freq.double(), _inv_freq(grown, 128), rtol=1e-5, atol=0)
    rotary(x, torch.arange(32)[None])
    torch.testing.assert_close(rotary.inv_freq.double(), _inv_freq(1e4, 128), rtol=1e-5, atol=0)


@pytest.mark.parametrize("method", SUPPORTED_METHODS)
def test_tiny_llama_forward_past_native_window(method):
    base = make_tiny_llama(max_position_embeddings=64)
    scaled = LlamaForCausalLM(scale_rope(base.config, method, 256)).eval()
    scaled.load_state_dict(base.state_dict())
    ids = torch.randint(3, 320, (1, 256), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, out = base(ids).logits, scaled(ids).logits
    assert out.shape == (1, 256, 320) and torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-5) == (method == "none")


def test_rescaling_starts_from_native_window_and_base():
    config = _llama(native=64)
    ntk = scale_rope(config, "ntk", 256)
    again = scale_rope(scale_rope(ntk, "linear", 128), "yarn", 512)
    assert native_window(again) == 64
    assert describe_rope(again) == {
        "method": "yarn",
        "rope_type": "yarn",
        "factor": 8.0,
        "native_window": 64,
        "target_length": 512,
        "rope_theta": 1e4,
        "max_position_embeddings": 512,
    }
    assert describe_rope(scale_rope(ntk, "none", 128))["rope_theta"] == 1e4
    explicit = scale_rope(config, "linear", 256, original_length=32)
    assert describe_rope(explicit)["factor"] == 8.0 and native_window(explicit) == 32


def test_input_config_is_not_modified():
    config = _llama(native=64)
    before = config.to_dict()
    scale_rope(config, "yarn", 256)
    assert config.to_dict() == before and describe_rope(config)["method"] == "none"


def test_describe_unscaled_and_dynamic_configs():
    assert describe_rope(_qwen2()) == {
        "method": "none",
        "rope_type": "default",
        "factor": 1.0,
        "native_window": 2048,
        "target_length": 2048,
        "rope_theta": 1e6,
        "max_position_embeddings": 2048,
    }
    dynamic = describe_rope(scale_rope(_qwen2(), "dynamic", 6144))
    assert (dynamic["target_length"], dynamic["max_position_embeddings"], dynamic["factor"]) == (6144, 2048, 3.0)


def test_existing_hf_scaling_uses_its_original_window():
    config = _llama(native=64)
    yarn = scale_rope(config, "yarn", 256)
    delattr(yarn, "longwin_rope")  # as a hub config with yarn would look
    assert native_window(yarn) == 64
    config.original_max_position_embeddings = 32  # Phi-3 keeps it at the top level
    assert native_window(config) == 32
    assert scale_rope(config, "llama3", 128).original_max_position_embeddings == 32


def test_mistral_config_scales():
    scaled = scale_rope(MistralConfig(max_position_embeddings=1024, head_dim=64), "linear", 4096)
    assert describe_rope(scaled)["factor"] == 4.0 and scaled.max_position_embeddings == 4096


class _V4StyleConfig:
    """Attributes as a transformers 4.x Llama config has them (5.x configs map `rope_scaling` away)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def test_v4_layout_written_for_configs_without_rope_parameters():
    legacy = _V4StyleConfig(
        rope_theta=1e4,
        rope_scaling={"type": "linear", "factor": 2.0},
        max_position_embeddings=128,
        hidden_size=32,
        num_attention_heads=4,
    )
    assert describe_rope(legacy)["rope_type"] == "linear"
    scaled = scale_rope(legacy, "yarn", 512, original_length=64, beta_fast=16)
    assert not isinstance(getattr(scaled, "rope_parameters", None), dict)
    assert scaled.rope_scaling == {
        "rope_type": "yarn",
        "factor": 8.0,
        "original_max_position_embeddings": 64,
        "beta_fast": 16.0,
    }
    ntk = scale_rope(legacy, "ntk", 256)
    assert ntk.rope_scaling is None and ntk.rope_theta == pytest.approx(1e4 * 2 ** (8 / 6))
    revised = scale_rope(legacy, "revised-yarn", 512, original_length=64, beta_fast=16)
    assert revised.rope_theta == 1e4 and revised.rope_scaling.keys() == {
        "rope_type",
        "factor",
        "original_max_position_embeddings",
        "attention_factor",
        "short_factor",
        "long_factor",
    }
    assert revised.rope_scaling["rope_type"] == "longrope"
    assert revised.rope_scaling["original_max_position_embeddings"] == 64
    expected, attention = _revised_yarn(1e4, 8, 64, 8.0, beta_fast=16)
    np.testing.assert_allclose(1 / np.array(revised.rope_scaling["long_factor"]), expected / _inv_freq(1e4, 8).numpy())
    assert revised.rope_scaling["short_factor"] == revised.rope_scaling["long_factor"]
    assert revised.rope_scaling["attention_factor"] == pytest.approx(attention)


def _error(match: str, *args, **kwargs) -> None:
    with pytest.raises(LongwinError, match=match) as info:
        scale_rope(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_errors_are_one_line():
    llama = _llama(native=64)
    _error("GPT2Config has no RoPE", GPT2Config(), "linear", 4096)
    _error("target_length 64 must exceed the native window 64", llama, "linear", 64)
    _error("target_length 100 must exceed the native window 128", llama, "linear", 100, original_length=128)
    _error("supported: none, linear, ntk, dynamic, yarn, revised-yarn, llama3", llama, "longrope", 256)
    _error("target_length must be a positive integer, got 256.0", llama, "linear", 256.0)
    _error("target_length must be a positive integer, got True", llama, "linear", True)
    _error("original_length must be a positive integer, got 0", llama, "linear", 256, original_length=0)
    _error("unknown option.*'linear': beta_fast; allowed: none", llama, "linear", 256, beta_fast=32)
    _error(
        "unknown option.*'yarn': low_freq_factor; allowed: beta_fast, beta_slow, attention_factor",
        llama,
        "yarn",
        256,
        low_freq_factor=1,
    )
    _error("beta_slow must be a positive number, got -1", llama, "yarn", 256, beta_slow=-1)
    _error("attention_factor must be a positive number, got 'big'", llama, "yarn", 256, attention_factor="big")
    _error("attention_factor must be a positive number, got nan", llama, "yarn", 256, attention_factor=float("nan"))
    _error("beta_fast > beta_slow, got beta_fast=2.0 and beta_slow=4.0", llama, "yarn", 256, beta_fast=2, beta_slow=4)
    _error(
        "revised-yarn needs beta_fast > beta_slow, got beta_fast=2.0 and beta_slow=2.0",
        llama,
        "revised-yarn",
        256,
        beta_fast=2,
        beta_slow=2,
    )
    _error(
        "revised-yarn needs beta_fast > beta_slow, got beta_fast=0.5 and beta_slow=1.0",
        llama,
        "revised-yarn",
        256,
        beta_fast=0.5,
    )
    _error(
        "unknown option.*'revised-yarn': truncate; allowed: beta_fast, beta_slow, attention_factor",
        llama,
        "revised-yarn",
        256,
        truncate=False,
    )
    _error("attention_factor must be a positive number, got 0", llama, "revised-yarn", 256, attention_factor=0)
    _error("high_freq_factor > low_freq_factor, got 1.0 and 1.0", llama, "llama3", 256, high_freq_factor=1)
    _error("rotary dimension above 2, got 2", LlamaConfig(hidden_size=4, num_attention_heads=2), "ntk", 4096)
    with pytest.raises(LongwinError, match="GPT2Config has no RoPE"):
        describe_rope(GPT2Config())


def test_per_layer_rope_is_refused():
    from transformers import Gemma3TextConfig

    config = Gemma3TextConfig()
    if not isinstance(getattr(config, "rope_parameters", None), dict):
        pytest.skip("per-layer rope_parameters only exist in transformers 5")
    _error("per-layer RoPE parameters", config, "linear", 2 * config.max_position_embeddings)


def _llama_head(head_dim: int, native: int, theta: float) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=320,
        hidden_size=2 * head_dim,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=native,
        rope_theta=theta,
        tie_word_embeddings=True,
    )


@pytest.mark.parametrize(
    ("head_dim", "theta", "native", "s"),
    [(128, 1e4, 4096, 8), (128, 1e4, 4096, 2), (128, 5e5, 8192, 16), (64, 1e6, 2048, 4), (32, 5e5, 256, 8)],
)
def test_revised_yarn_frequencies_at_lengths_below_and_above_native(head_dim, theta, native, s):
    """Stock longrope switches factor sets at the native window; both sets hold the revised-YaRN divisors."""
    scaled = scale_rope(_llama_head(head_dim, native, theta), "revised-yarn", native * s)
    rotary = LlamaForCausalLM(scaled).model.rotary_emb
    inv, attention = _revised_yarn(theta, head_dim, native, s)
    x = torch.zeros(1, 1, head_dim)
    # a short prefix, then CREAM-style: three tokens whose position ids span the target window
    for positions in ([0, 1, native // 2, native - 1], [0, native // 2, native + 7, native * s - 1]):
        cos, sin = rotary(x, torch.tensor([positions]))
        np.testing.assert_allclose(rotary.inv_freq.double().numpy(), inv, rtol=1e-5)
        assert rotary.attention_scaling == pytest.approx(attention)
        angles = np.outer(positions, inv)
        np.testing.assert_allclose(cos[0, :, : head_dim // 2].double().numpy(), np.cos(angles) * attention, atol=5e-3)
        np.testing.assert_allclose(sin[0, :, head_dim // 2 :].double().numpy(), np.sin(angles) * attention, atol=5e-3)


def test_revised_yarn_differs_from_yarn_only_in_the_middle_band():
    """Llama-2 geometry (N=4096, d=128, b=1e4) at s=8: the 25 ramp pairs 21..45 differ, by up to (s+1)^2/(4s)."""
    revised = LlamaForCausalLM(scale_rope(_llama(), "revised-yarn", 32768)).model.rotary_emb
    yarn = LlamaForCausalLM(scale_rope(_llama(), "yarn", 32768)).model.rotary_emb
    ratio = yarn.inv_freq.double() / revised.inv_freq.double()
    differing = ((ratio - 1).abs() > 1e-6).nonzero().flatten().tolist()
    assert differing == list(range(21, 46))
    assert ratio.max().item() == pytest.approx(81 / 32, rel=1e-6) and ratio.argmax().item() == 33  # 2.53 at ramp 1/2
    assert (ratio >= 1 - 1e-6).all()  # revised YaRN never rotates faster than YaRN
    assert revised.attention_scaling == pytest.approx(yarn.attention_scaling)
    expected, _ = _revised_yarn(1e4, 128, 4096, 8)  # the same count from the formulas alone, in float64
    reference, _ = _expected("yarn", 1e4, 128, 4096, 8.0)
    exact = reference.numpy() / expected
    assert int((np.abs(exact - 1) > 1e-6).sum()) == 25 and exact.max() == pytest.approx(2.53125, rel=1e-12)


def test_revised_yarn_round_trip_without_remote_code(tmp_path, hf_warnings):
    base = make_tiny_llama(max_position_embeddings=64)
    scaled = LlamaForCausalLM(scale_rope(base.config, "revised-yarn", 256)).eval()
    scaled.load_state_dict(base.state_dict())
    scaled.save_pretrained(tmp_path)
    hf_warnings.clear()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert not [r.message for r in hf_warnings.records if "rope" in r.getMessage().lower()]
    assert type(loaded) is LlamaForCausalLM

    saved = json.loads((tmp_path / "config.json").read_text())
    assert "auto_map" not in saved and saved["longwin_rope"]["method"] == "revised-yarn"
    fields = ("rope_parameters",) if V5 else ("rope_scaling", "rope_theta")
    for name in fields:
        assert getattr(loaded.config, name) == getattr(scaled.config, name)
    rope = saved["rope_parameters"] if V5 else saved["rope_scaling"]
    assert rope["rope_type"] == "longrope" and rope["short_factor"] == rope["long_factor"]
    assert describe_rope(loaded.config)["method"] == "revised-yarn" and native_window(loaded.config) == 64

    ids = torch.randint(3, 320, (1, 256), generator=torch.Generator().manual_seed(0))
    spread = torch.tensor([[0, 1, 2, 100, 101, 200, 254, 255]])  # short sequence, positions over the target window
    yarn = LlamaForCausalLM(scale_rope(base.config, "yarn", 256)).eval()
    yarn.load_state_dict(base.state_dict())
    with torch.no_grad():
        for far, kwargs in (
            (False, {"input_ids": ids[:, :48]}),
            (True, {"input_ids": ids}),
            (True, {"input_ids": ids[:, :8], "position_ids": spread}),
        ):
            out = loaded(**kwargs).logits
            assert torch.equal(out, scaled(**kwargs).logits)
            if far:  # the middle band differs from YaRN's by up to 2.5x, which shows once positions are far apart
                assert not torch.allclose(out, yarn(**kwargs).logits, atol=1e-4)


def test_rescaling_a_revised_yarn_config_drops_its_factors():
    revised = scale_rope(_llama(native=64), "revised-yarn", 256)
    again = scale_rope(revised, "yarn", 512)
    rope = again.rope_parameters if V5 else again.rope_scaling
    assert "short_factor" not in rope and "long_factor" not in rope and rope["original_max_position_embeddings"] == 64
    assert describe_rope(again)["method"] == "yarn" and describe_rope(again)["factor"] == 8.0


def test_a_method_the_family_config_rejects_is_refused_at_once():
    """transformers 5.x Phi-3 takes only longrope RoPE; a yarn config used to fail only at save_pretrained, after
    the whole training run. revised-yarn (stored as longrope) is accepted."""
    from transformers import Phi3Config

    config = Phi3Config(
        vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, original_max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    with pytest.raises(LongwinError, match=r"Phi3Config does not take yarn RoPE scaling: .*longrope"):
        scale_rope(config, "yarn", 256)
    assert scale_rope(config, "revised-yarn", 256).rope_parameters["rope_type"] == "longrope"
