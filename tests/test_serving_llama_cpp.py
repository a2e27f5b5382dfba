"""The proof in a real engine (issue #34): the toy extended 256 -> 2048 with training-free YaRN, exported to an
F16 GGUF, gives llama.cpp the perplexity transformers gives on the same 2048 tokens (within 2 %), and the
base exported without scaling degrades past its window in llama.cpp as it does in transformers.

Slow and optional: it needs llama-cpp-python built from source (docs/serving.md), found in the environment or
at `$LONGWIN_LLAMA_CPP_PYTHON`; it is skipped where it is absent.
"""

from __future__ import annotations

import pytest
import torch
from serving_parity import llama_cpp_module, llama_cpp_nll, perplexity, transformers_nll

from longwin.data.corpora import available_corpora, load_documents
from longwin.eval.loading import load_for_eval
from longwin.serving.export import export_gguf

pytestmark = pytest.mark.slow
LENGTH = 2048


@pytest.fixture(scope="module")
def text_ids():
    if llama_cpp_module() is None:
        pytest.skip("llama-cpp-python is not installed (docs/serving.md: build it, set LONGWIN_LLAMA_CPP_PYTHON)")
    if not available_corpora().get("austen"):
        pytest.skip("the austen corpus is not installed")
    _, tokenizer = load_for_eval("toy", device="cpu", dtype="float32")
    text = max(load_documents("austen"), key=lambda d: len(d.text)).text
    return tokenizer(text, add_special_tokens=False)["input_ids"][:LENGTH]


def _both(tmp_path, name: str, ids: list[int], outtype: str = "f16", **rope) -> tuple[float, float]:
    """(transformers, llama.cpp) perplexity of the toy loaded with `rope`, exported as `outtype`."""
    torch.set_num_threads(2)
    model, tokenizer = load_for_eval("toy", device="cpu", dtype="float32", **rope)
    folder = tmp_path / name
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    gguf = export_gguf(folder, tmp_path / f"{name}-{outtype}.gguf", outtype).path
    return perplexity(transformers_nll(model, ids)), perplexity(llama_cpp_nll(gguf, ids, n_ctx=LENGTH))


@pytest.mark.parametrize(
    "rope,options,outtype,bar",
    [
        ("yarn", {}, "f16", 0.02),
        ("yarn", {"attention_factor": 1.0}, "f16", 0.02),
        ("revised-yarn", {}, "f16", 0.02),
        ("linear", {}, "f16", 0.02),
        ("yarn", {}, "q8_0", 0.05),
    ],
)
def test_extended_toy_matches_transformers_in_llama_cpp(tmp_path, text_ids, rope, options, outtype, bar):
    scaled = {"rope": rope, "target_length": LENGTH, "rope_options": options}
    hf, cpp = _both(tmp_path, rope, text_ids, outtype, **scaled)
    print(f"toy at {LENGTH}, {rope} {options} {outtype}: transformers {hf:.3f} llama.cpp {cpp:.3f}")
    assert abs(cpp / hf - 1) < bar


def test_the_unscaled_base_fails_past_its_window_in_llama_cpp_as_in_transformers(tmp_path, text_ids):
    hf_yarn, cpp_yarn = _both(tmp_path, "yarn", text_ids, rope="yarn", target_length=LENGTH)
    hf_base, cpp_base = _both(tmp_path, "base", text_ids)
    print(f"toy at {LENGTH}: base transformers {hf_base:.3f} llama.cpp {cpp_base:.3f}")
    assert hf_base > 1.5 * hf_yarn and cpp_base > 1.5 * cpp_yarn  # past its 256-token window the base fails
    assert abs(cpp_base / hf_base - 1) < 0.02
