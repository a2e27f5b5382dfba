"""The serving hints of `longwin export` (issue #34) use only the flags, keys and value types each engine documents.

The documented sets are written out here, each with its source, so a hint that drifts from them fails:
* vLLM 0.33, docs.vllm.ai/en/stable/features/context_extension/: `vllm serve MODEL --hf-overrides JSON
  --max-model-len N`, the JSON's `rope_parameters` taking transformers' RoPE keys (transformers 5.x
  `modeling_rope_utils.RopeParameters`), `--rope-scaling` removed.
* llama.cpp vendored in llama-cpp-python 0.3.36, `common/arg.cpp`: `-c N`, `--rope-scaling {none,linear,yarn}`,
  `--rope-scale N`, `--rope-freq-base N`, `--yarn-orig-ctx N`, `--override-kv KEY=TYPE:VALUE`.
"""

from __future__ import annotations

import json

import pytest
from transformers import LlamaConfig

from conftest import make_tiny_llama
from longwin.cli import main
from longwin.rope import scale_rope
from longwin.serving.hints import render, serving_hints

VLLM_FLAGS = {"--max-model-len": int, "--hf-overrides": json.loads}
# transformers 5.x RopeParameters (what vLLM's rope_parameters override is read as)
ROPE_PARAMETER_KEYS = {
    "rope_theta", "rope_type", "partial_rotary_factor", "factor", "original_max_position_embeddings",
    "attention_factor", "beta_fast", "beta_slow", "short_factor", "long_factor", "low_freq_factor",
    "high_freq_factor", "mscale", "mscale_all_dim", "truncate", "mrope_section",
}  # fmt: skip


def _one_of(*choices: str):
    def check(value: str) -> None:
        assert value in choices, value

    return check


def _override(value: str) -> None:
    """KEY=TYPE:VALUE with a type llama.cpp's --override-kv takes (int, float, bool, str)."""
    key, typed = value.split("=", 1)
    kind, number = typed.split(":", 1)
    assert key.startswith("llama.") and kind in {"int", "float", "bool", "str"}
    float(number)


LLAMA_CPP_FLAGS = {
    "-c": int,
    "--rope-scaling": _one_of("none", "linear", "yarn"),
    "--rope-scale": float,
    "--rope-freq-base": float,
    "--yarn-orig-ctx": int,
    "--override-kv": _override,
}


def _pairs(argv: list[str]) -> dict[str, str]:
    flags = [i for i, arg in enumerate(argv) if arg.startswith("-")]
    return {argv[i]: argv[i + 1] for i in flags}


def _config(method: str, **options) -> LlamaConfig:
    base = make_tiny_llama(max_position_embeddings=64).config
    return base if method == "none" else scale_rope(base, method, 512, **options)


@pytest.mark.parametrize(
    "method,options",
    [
        ("none", {}),
        ("linear", {}),
        ("ntk", {}),
        ("yarn", {}),
        ("yarn", {"attention_factor": 1.0}),
        ("revised-yarn", {}),
    ],
)
def test_hints_use_only_documented_flags_keys_and_types(method, options):
    hints = serving_hints(_config(method, **options), "out/model", "out/model.gguf")
    assert hints.vllm[:3] == ["vllm", "serve", "out/model"]
    vllm = _pairs(hints.vllm)
    assert set(vllm) == set(VLLM_FLAGS)
    for flag, value in vllm.items():
        VLLM_FLAGS[flag](value)
    overrides = json.loads(vllm["--hf-overrides"])
    assert set(overrides) <= {"rope_parameters", "max_position_embeddings"}
    assert set(overrides["rope_parameters"]) <= ROPE_PARAMETER_KEYS
    assert int(vllm["--max-model-len"]) == overrides["max_position_embeddings"] == (64 if method == "none" else 512)
    for argv in (hints.llama_gguf[1:], hints.llama_base_flags or []):
        for flag, value in _pairs(argv).items():
            if flag != "-m":
                LLAMA_CPP_FLAGS[flag](value)


def test_yarn_flags_match_the_config():
    flags = _pairs(serving_hints(_config("yarn", attention_factor=1.0), "m", "m.gguf").llama_base_flags)
    assert flags["--rope-scaling"] == "yarn" and float(flags["--rope-scale"]) == 8.0
    assert flags["--yarn-orig-ctx"] == "64" and flags["-c"] == "512"
    assert flags["--override-kv"].startswith("llama.rope.scaling.attn_factor=float:0.82785")


def test_per_pair_factors_have_no_flags_and_the_text_says_so():
    hints = serving_hints(_config("revised-yarn"), "m", "m.gguf")
    assert hints.llama_base_flags is None
    text = render(hints)
    assert "documented, not verified" in text and "vLLM 0.33" in text and "llama-cpp-python 0.3.36" in text


def test_serving_flag_prints_hints_without_writing(tmp_path, tiny_tokenizer, capsys):
    model = make_tiny_llama(max_position_embeddings=64)
    model.config = scale_rope(model.config, "linear", 256)
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    assert main(["export", str(tmp_path), "--serving", "--outfile", str(tmp_path / "x.gguf")]) == 0
    out = capsys.readouterr().out
    assert "--max-model-len 256" in out and "--rope-scaling linear --rope-scale 4" in out
    assert not (tmp_path / "x.gguf").exists()
