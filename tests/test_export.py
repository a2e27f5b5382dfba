"""`longwin export` (issue #34): the GGUF read back with the `gguf` package's reader holds llama.cpp's RoPE keys
for each scaling, the tensors under llama.cpp's names and shapes in the asked type, and the tokenizer."""

from __future__ import annotations

import json
import math

import gguf
import numpy as np
import pytest
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

from conftest import make_tiny_llama
from longwin.cli import main
from longwin.eval.loading import load_for_eval
from longwin.rope import scale_rope
from longwin.serving.export import _pairs_adjacent, export_gguf


@pytest.fixture(scope="module")
def toy_scaled(tmp_path_factory):
    """Save the toy extended 256 -> 2048 with a RoPE method (training-free), once per method."""
    made = {}

    def make(rope: str, **options):
        key = (rope, tuple(sorted(options.items())))
        if key not in made:
            model, tokenizer = load_for_eval(
                "toy", rope=rope, target_length=2048, rope_options=options, device="cpu", dtype="float32"
            )
            folder = tmp_path_factory.mktemp(f"toy-{rope}")
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            made[key] = folder
        return made[key]

    return make


def _fields(path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items()}, {t.name: t for t in reader.tensors}


def test_yarn_export_carries_llama_cpp_keys_and_shapes(toy_scaled, tmp_path):
    out = tmp_path / "toy.gguf"
    export_gguf(toy_scaled("yarn"), out, "f16")
    fields, tensors = _fields(out)
    assert fields["general.architecture"] == "llama" and fields["llama.context_length"] == 2048
    assert fields["llama.rope.scaling.type"] == "yarn" and fields["llama.rope.scaling.factor"] == 8.0
    assert fields["llama.rope.scaling.original_context_length"] == 256
    assert "llama.rope.scaling.attn_factor" not in fields  # YaRN's default: llama.cpp applies 1 + 0.1 ln s itself
    assert fields["llama.rope.freq_base"] == 500000.0 and fields["llama.rope.dimension_count"] == 32
    assert fields["tokenizer.ggml.pre"] == "smollm" and len(fields["tokenizer.ggml.tokens"]) == 2048
    assert fields["tokenizer.ggml.merges"] and fields["tokenizer.ggml.bos_token_id"] == 1
    assert len(tensors) == 2 + 9 * 4 and "output.weight" not in tensors  # tied embeddings: llama.cpp reuses token_embd
    assert list(tensors["token_embd.weight"].shape) == [192, 2048]  # GGUF lists the fastest dimension first
    assert list(tensors["blk.3.ffn_down.weight"].shape) == [512, 192]
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32


@pytest.mark.parametrize("outtype,kind,error", [("q8_0", "Q8_0", 0.02), ("q4_1", "Q4_1", 0.2), ("f32", "F32", 0)])
def test_quantised_exports_hold_the_weights(toy_scaled, tmp_path, outtype, kind, error):
    folder = toy_scaled("yarn")
    out = tmp_path / f"toy-{outtype}.gguf"
    export_gguf(folder, out, outtype)
    _, tensors = _fields(out)
    weight = tensors["blk.1.ffn_up.weight"]
    assert weight.tensor_type == getattr(gguf.GGMLQuantizationType, kind)
    values = gguf.quants.dequantize(weight.data, weight.tensor_type).reshape(512, 192)
    original = load_file(folder / "model.safetensors")["model.layers.1.mlp.up_proj.weight"].numpy()
    scale = np.abs(original).max()
    assert np.abs(values - original).max() <= error * scale + 1e-7


def test_query_rows_are_reordered_to_adjacent_pairs():
    """Head h's rows (first half i, second half i) -> rows 2i, 2i+1: llama.cpp rotates adjacent pairs."""
    rows = np.arange(2 * 8)[:, None].astype(np.float32)  # 2 heads of 8
    assert _pairs_adjacent(rows, 2)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]


def test_attention_factor_one_is_kept(toy_scaled, tmp_path):
    out = tmp_path / "af1.gguf"
    export_gguf(toy_scaled("yarn", attention_factor=1.0), out, "f16")
    fields, _ = _fields(out)
    assert math.isclose(fields["llama.rope.scaling.attn_factor"], 1 / (1 + 0.1 * math.log(8)), rel_tol=1e-6)


def test_revised_yarn_goes_in_as_rope_freqs(toy_scaled, tmp_path):
    folder = toy_scaled("revised-yarn")
    out = tmp_path / "ry.gguf"
    export_gguf(folder, out, "f16")
    fields, tensors = _fields(out)
    divisors = json.loads((folder / "config.json").read_text())["rope_parameters"]["long_factor"]
    assert fields["llama.rope.scaling.type"] == "none"
    assert math.isclose(fields["llama.rope.scaling.attn_factor"], 0.1 * math.log(8) + 1, rel_tol=1e-6)
    np.testing.assert_allclose(tensors["rope_freqs.weight"].data, divisors, rtol=1e-5)


def test_linear_export(toy_scaled, tmp_path):
    out = tmp_path / "lin.gguf"
    export_gguf(toy_scaled("linear"), out, "f16")
    fields, _ = _fields(out)
    assert fields["llama.rope.scaling.type"] == "linear" and fields["llama.rope.scaling.factor"] == 8.0


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: LlamaForCausalLM(scale_rope(make_tiny_llama().config, "dynamic", 512)), "no dynamic RoPE scaling"),
        (lambda: LlamaForCausalLM(scale_rope(make_tiny_llama().config, "yarn", 512, beta_fast=16)), "YaRN betas"),
        (lambda: GPT2LMHeadModel(GPT2Config(vocab_size=320, n_embd=32, n_layer=1, n_head=2)), "not gpt2"),
    ],
)
def test_refusals_are_one_line(tmp_path, tiny_tokenizer, capsys, make, message):
    make().save_pretrained(tmp_path / "m")
    tiny_tokenizer.save_pretrained(tmp_path / "m")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "m"), "--outfile", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x.gguf").exists()


def test_sharedllm_folders_are_refused(tmp_path, capsys):
    make_tiny_llama().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sharedllm"}))
    assert main(["export", str(tmp_path), "--outfile", str(tmp_path / "x.gguf")]) == 2
    assert "SharedLLM folders cannot be exported" in capsys.readouterr().err


def test_cli_prints_progress_timing_and_hints(toy_scaled, tmp_path, capsys):
    out = tmp_path / "cli.gguf"
    assert main(["export", str(toy_scaled("yarn")), "--outfile", str(out), "--outtype", "q8_0"]) == 0
    captured = capsys.readouterr()
    assert "(q8_0, RoPE yarn, context 2048)" in captured.err and " s\n" in captured.err
    assert f"llama-cli -m {out} -c 2048" in captured.out and out.is_file()
