"""What a multi-GPU run meets at its end, tested at the engines' API boundary on the CPU (issue #31):
the final save under FSDP / ZeRO-3, LoRA merging over sharded parameters, a save that would fail only after
training, and the memory check of long perplexity evaluations."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Trainer

from conftest import make_tiny_llama
from longwin.cli import main
from longwin.errors import LongwinError
from longwin.eval.model import check_fits, forward_bytes
from longwin.eval.runner import needs_cache
from longwin.eval.tasks import make_task
from longwin.methods.lora import LoraOptions, apply_lora, merge_lora_state, save_lora_model
from longwin.training.config import recipe_dir
from longwin.training.final_save import zero3_problem
from longwin.training.runner import CARD, save_final
from test_training import _train_args


class _Plugin:
    """accelerate's FSDP plugin as the Trainer reads it: FSDP2's default, sharded state dicts."""

    state_dict_type = "StateDictType.SHARDED_STATE_DICT"

    def set_state_dict_type(self, kind: str) -> None:
        self.state_dict_type = f"StateDictType.{kind}"


class _FsdpTrainer:
    """Runs transformers' own `Trainer.save_model` FSDP branch; the collectives are the identity on one rank."""

    is_fsdp_enabled, is_deepspeed_enabled = True, False
    save_model = Trainer.save_model

    def __init__(self, model) -> None:
        self.model = model
        self.args = SimpleNamespace(push_to_hub=False, should_save=True)  # read by transformers 5.17
        self.accelerator = SimpleNamespace(
            state=SimpleNamespace(fsdp_plugin=_Plugin()),
            wait_for_everyone=lambda: None,
            get_state_dict=lambda m: m.state_dict(),
            unwrap_model=lambda m: m,
        )

    def is_world_process_zero(self) -> bool:
        return True

    def _save(self, output_dir, state_dict=None) -> None:
        self.model.save_pretrained(output_dir, state_dict=state_dict)


def test_fsdp_sharded_state_dict_still_ends_in_full_stock_loadable_weights(tmp_path, tiny_tokenizer):
    model = make_tiny_llama()
    trainer = _FsdpTrainer(model)
    save_final(trainer, tmp_path, lambda f: trainer.save_model(str(f)), tiny_tokenizer.save_pretrained, dict)
    assert (tmp_path / CARD).is_file()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name


def test_a_final_save_without_weights_is_refused_and_never_marked_finished(tmp_path, tiny_tokenizer):
    trainer = _FsdpTrainer(make_tiny_llama())
    with pytest.raises(LongwinError, match="not marked finished"):
        save_final(trainer, tmp_path, lambda f: f.mkdir(parents=True), tiny_tokenizer.save_pretrained, dict)
    assert not (tmp_path / CARD).exists() and not (tmp_path / ".final-staging").exists()


def test_zero3_without_gathered_weights_is_refused_before_loading():
    bad = SimpleNamespace(hf_deepspeed_config=SimpleNamespace(config={"zero_optimization": {"stage": 3}}))
    assert "stage3_gather_16bit_weights_on_model_save" in zero3_problem(bad)
    for preset in (recipe_dir() / "presets").glob("deepspeed-*.json"):
        shipped = SimpleNamespace(hf_deepspeed_config=SimpleNamespace(config=json.loads(preset.read_text())))
        assert zero3_problem(shipped) is None, preset.name


def _trained_lora():
    torch.manual_seed(0)
    model = apply_lora(make_tiny_llama(), LoraOptions(enabled=True))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # as after training: B is no longer zero
    return model


def test_lora_state_dict_merge_equals_peft_merge_and_unload():
    model = _trained_lora()
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    merged = merge_lora_state(model.state_dict(), model.peft_config["default"])
    assert set(merged) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(merged[name], tensor, msg=name)


def test_lora_merge_on_save_under_zero3_uses_the_gathered_weights_not_the_empty_shards(tmp_path):
    model = _trained_lora()
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    gathered = {k: v.clone() for k, v in model.state_dict().items()}
    for param in model.parameters():  # what rank 0 holds under ZeRO-3: empty placeholders
        param.data = torch.empty(0)
    trainer = SimpleNamespace(
        model=model,
        deepspeed=model,
        is_deepspeed_enabled=True,
        is_world_process_zero=lambda: True,
        accelerator=SimpleNamespace(
            unwrap_model=lambda m: m,
            get_state_dict=lambda m: gathered,
            state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3)),
        ),
    )
    save_lora_model(trainer, tmp_path, LoraOptions(enabled=True))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).state_dict()
    for name, tensor in expected.items():
        torch.testing.assert_close(reloaded[name], tensor, msg=name)


def test_a_final_model_the_disk_cannot_hold_fails_before_the_first_step(tiny_setup, tmp_path, capsys, monkeypatch):
    import longwin.training.final_save as final_save

    model_dir, corpus = tiny_setup
    monkeypatch.setattr(final_save.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    out = tmp_path / "out"
    code = main(_train_args(model_dir, corpus, out, "--save-steps", "1"))
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2 and "free" in err[-1]
    assert not list(out.glob("checkpoint-*")), "training ran although its model could not be saved"


def test_a_config_that_does_not_survive_its_own_save_fails_before_the_first_step(tiny_setup, tmp_path, monkeypatch):
    from transformers import LlamaConfig

    original = LlamaConfig.to_dict

    def drops_rope(self):  # a family whose serialisation loses the scaling, as stock loaders would read it
        values = original(self)
        values.pop("rope_parameters", None), values.pop("rope_scaling", None)
        return values

    model_dir, corpus = tiny_setup
    monkeypatch.setattr(LlamaConfig, "to_dict", drops_rope)
    with pytest.raises(LongwinError, match="would change"):
        from longwin.rope import scale_rope
        from longwin.training.final_save import preflight_save

        model = make_tiny_llama()
        model.config = scale_rope(model.config, "yarn", 256)
        preflight_save(model, __import__("transformers").AutoTokenizer.from_pretrained(model_dir), tmp_path)


def _llama2_7b() -> LlamaConfig:
    return LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096,
    )  # fmt: skip


def test_perplexity_at_256k_on_a_7b_needs_no_kv_cache_so_it_fits_in_80_gib(monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=80 * 2**30))
    config, cpu = _llama2_7b(), torch.device("cpu")
    need = lambda n, cache: forward_bytes(config, n, 2, cache=cache)  # noqa: E731
    check_fits(need, [262144], 4, 1 << 20, cpu, cache=False)  # perplexity: one window, no cache
    with pytest.raises(LongwinError, match="262144"):
        check_fits(need, [262144], 4, 1 << 20, cpu, cache=True)  # generation holds 128 GiB of KV cache


def test_only_generating_tasks_ask_for_a_kv_cache():
    from longwin.eval.options import make_options

    options = make_options({})
    assert not needs_cache([make_task("ppl", options, 0)])
    assert needs_cache([make_task("ppl", options, 0), make_task("passkey", options, 0)])
