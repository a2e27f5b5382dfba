"""The reload check after every save (issue #34): a saved folder reloaded by stock `from_pretrained` in a fresh
process must give the in-memory model's logits past the native window, differ from the unscaled base there,
and carry the RoPE keys serving engines read."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaForCausalLM

from conftest import make_tiny_llama
from longwin.errors import LongwinError
from longwin.rope import scale_rope
from longwin.serving.reload_check import MIN_EFFECT, make_probe, reference_logits, reload_check
from longwin.serving.rope_keys import key_problems


def _scaled_model(method: str = "yarn") -> LlamaForCausalLM:
    """The tiny Llama (window 64) with its RoPE scaled to 512 at construction, as `from_pretrained(config=)` does."""
    base = make_tiny_llama(max_position_embeddings=64)
    model = LlamaForCausalLM(scale_rope(base.config, method, 512)).eval()
    model.load_state_dict(base.state_dict())
    return model


def _check(model: LlamaForCausalLM, folder) -> dict:
    probe = make_probe(model.config)
    return reload_check(folder, reference_logits(model, probe), probe, model.config, model.dtype)


def test_a_correct_save_passes(tmp_path):
    model = _scaled_model()
    model.save_pretrained(tmp_path)
    record = _check(model, tmp_path)
    assert record["passed"] and record["max_rel_diff_reloaded"] < 1e-5
    assert record["max_rel_diff_unscaled"] > 10 * MIN_EFFECT


def test_scaling_set_after_loading_is_refused(tmp_path):
    """The transformers 5.x trap: the config says YaRN, but the rotary frequencies were computed at init."""
    model = make_tiny_llama(max_position_embeddings=64)
    scaled = scale_rope(model.config, "yarn", 512)
    model.config = scaled  # inv_freq unchanged: the model still runs at native RoPE
    model.save_pretrained(tmp_path)
    with pytest.raises(LongwinError, match="not the one the model ran with"):
        _check(model, tmp_path)


def test_a_saved_config_without_its_scaling_is_refused(tmp_path):
    model = _scaled_model()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("longwin_rope")
    config["rope_parameters"] = {"rope_type": "default", "rope_theta": config["rope_parameters"]["rope_theta"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LongwinError, match="reload check"):
        _check(model, tmp_path)


def test_a_scaling_that_changes_nothing_is_refused(tmp_path):
    """Scaled on paper (an NTK record, a 512 window), native in fact, in memory and on disk alike: equal to the
    unscaled base past the native window."""
    model = make_tiny_llama(max_position_embeddings=64)
    theta = model.config.rope_parameters["rope_theta"]
    model.config.longwin_rope = {"method": "ntk", "factor": 8.0, "native_window": 64, "native_rope_theta": theta}
    model.config.max_position_embeddings = 512
    model.save_pretrained(tmp_path)
    with pytest.raises(LongwinError, match="its RoPE scaling does nothing"):
        _check(model, tmp_path)


@pytest.mark.parametrize("method", ["linear", "ntk", "dynamic", "yarn", "revised-yarn", "llama3"])
def test_scale_rope_writes_every_key_engines_read(method):
    config = scale_rope(make_tiny_llama(max_position_embeddings=64).config, method, 512)
    assert key_problems(config.to_dict()) == []


@pytest.mark.parametrize(
    "method,edit,message",
    [
        ("yarn", lambda r, c: r.pop("original_max_position_embeddings"), "original_max_position_embeddings"),
        ("yarn", lambda r, c: c.update(max_position_embeddings=64), "engines expect 512"),
        ("yarn", lambda r, c: r.update(attention_factor="1"), "attention_factor must be a positive number"),
        ("linear", lambda r, c: r.update(factor=1.0), "factor must be a number above 1"),
        ("linear", lambda r, c: c.update(max_position_embeddings=256), "engines expect 512"),
        ("dynamic", lambda r, c: c.update(max_position_embeddings=512), "engines expect 64"),
        ("revised-yarn", lambda r, c: r.update(short_factor=r["short_factor"][:-1]), "short_factor must hold 4"),
        ("revised-yarn", lambda r, c: r.pop("attention_factor"), "attention_factor is missing"),
    ],
)
def test_key_rules_name_what_an_engine_would_miss(method, edit, message):
    config = scale_rope(make_tiny_llama(max_position_embeddings=64).config, method, 512).to_dict()
    edit(config["rope_parameters"], config)
    assert any(message in problem for problem in key_problems(config))


def test_probe_straddles_the_extended_window():
    probe = make_probe(_scaled_model().config)
    positions = probe["position_ids"][0].tolist()
    assert positions[:8] == list(range(8)) and positions[8:] == list(range(504, 512))
    assert probe["input_ids"].shape == (1, 16) and torch.equal(
        probe["input_ids"], make_probe(_scaled_model().config)["input_ids"]
    )


def test_a_final_save_that_fails_the_reload_check_gets_no_card(tmp_path, tiny_tokenizer):
    """train()'s final save with the trap model: weights land, the card does not, the error is one line."""
    from longwin.training.runner import CARD, final_reload_check, save_final
    from test_gpu_ready import _FsdpTrainer

    model = make_tiny_llama(max_position_embeddings=64)
    model.config = scale_rope(model.config, "yarn", 512)  # inv_freq unchanged
    trainer = _FsdpTrainer(model)
    trainer.model_wrapped = model
    check = final_reload_check(trainer, model, {"skipped": "test"})
    with pytest.raises(LongwinError, match="not the one the model ran with.*not marked finished"):
        save_final(trainer, tmp_path, lambda f: trainer.save_model(str(f)), tiny_tokenizer.save_pretrained, dict, check)
    assert not (tmp_path / CARD).exists() and (tmp_path / "model.safetensors").is_file()
