"""GPU-path pre-flight (issue #31): what would fail after the model loads is refused before, in one line; the
packaged recipes and launch presets agree with each other; the global batch is the recipe's, not the GPU count's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from transformers import TrainingArguments

import longwin.models
from conftest import make_tiny_llama
from longwin.cli import build_parser, main
from longwin.errors import LongwinError
from longwin.training.config import configs_from_args, list_recipes, recipe_dir
from longwin.training.preflight import check_model, check_run
from test_training import _train_args

PRESETS = recipe_dir() / "presets"
LAUNCH_VARS = ("WORLD_SIZE", "LOCAL_RANK", "RANK", "ACCELERATE_USE_FSDP", "FSDP_ACTIVATION_CHECKPOINTING")


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """Each test starts outside any launcher, whatever the shell running pytest holds."""
    for name in (*LAUNCH_VARS, "FSDP_TRANSFORMER_CLS_TO_WRAP"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_loading(monkeypatch):
    """A model load fails the test: pre-flight errors must come before the weights."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the pre-flight check refused the run")

    monkeypatch.setattr(longwin.models, "load_model", refuse)


def _refused(argv: list[str], capsys, *, loaded: bool = False) -> str:
    """The one error line (after the model's loading progress where the check needs the `loaded` model)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and (loaded or len(lines) == 1), lines
    assert lines[-1].startswith("longwin train: error: ")
    return lines[-1]


def _launched(monkeypatch, **fsdp: str) -> None:
    """A single process as `accelerate launch` with an FSDP config would start it, with these FSDP_* settings."""
    for name, value in {"WORLD_SIZE": "1", "ACCELERATE_USE_FSDP": "true", **fsdp}.items():
        monkeypatch.setenv(name, value)


def _accelerate_env(preset: dict) -> dict[str, str]:
    """The variables `accelerate launch --config_file preset` sets for an FSDP run (accelerate/utils/launch.py)."""
    fsdp = preset.get("fsdp_config", {})
    env = {
        "WORLD_SIZE": str(preset.get("num_processes", 1)),
        "LOCAL_RANK": "0",
        "ACCELERATE_USE_FSDP": "true",
        "FSDP_ACTIVATION_CHECKPOINTING": str(fsdp.get("fsdp_activation_checkpointing", False)).lower(),
    }
    if "fsdp_transformer_layer_cls_to_wrap" in fsdp:
        env["FSDP_TRANSFORMER_CLS_TO_WRAP"] = str(fsdp["fsdp_transformer_layer_cls_to_wrap"])
    if "fsdp_state_dict_type" in fsdp:
        env["FSDP_STATE_DICT_TYPE"] = str(fsdp["fsdp_state_dict_type"])
    return env


def _recipe_configs(recipe: str, *extra: str):
    parser, _ = build_parser()
    return configs_from_args(parser.parse_args(["train", "--config", recipe, "--use-cpu", "true", *extra]))


# --- 1: FSDP's own activation checkpointing with gradient checkpointing ---------------------------------------


def test_accelerate_fsdp_checkpointing_with_gradient_checkpointing_is_refused_before_loading(
    tiny_setup, tmp_path, monkeypatch, capsys, no_loading
):
    model_dir, corpus = tiny_setup
    _launched(monkeypatch, FSDP_ACTIVATION_CHECKPOINTING="true")
    line = _refused(_train_args(model_dir, corpus, tmp_path / "out", "--gradient-checkpointing", "true"), capsys)
    assert "activation checkpointing" in line and "gradient" in line


def test_fsdp_config_checkpointing_with_gradient_checkpointing_is_refused(tmp_path):
    targs = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, fsdp="full_shard", gradient_checkpointing=True,
        fsdp_config={"activation_checkpointing": True},
    )  # fmt: skip
    config, _ = _recipe_configs("cream-toy-2048")
    with pytest.raises(LongwinError, match="activation checkpointing"):
        check_run(config, targs, {"WORLD_SIZE": "2", "LOCAL_RANK": "0"})


# --- 4: report_to backends and the attention kernel must be installed ------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_report_to_a_missing_backend_is_refused_before_loading(tiny_setup, tmp_path, capsys, no_loading):
    model_dir, corpus = tiny_setup
    line = _refused(_train_args(model_dir, corpus, tmp_path / "out", "--report-to", "tensorboard"), capsys)
    assert "longwin[tensorboard]" in line


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed")
def test_flash_attention_without_flash_attn_is_refused_before_loading(tiny_setup, tmp_path, capsys, no_loading):
    model_dir, corpus = tiny_setup
    argv = _train_args(model_dir, corpus, tmp_path / "out", "--attn-implementation", "flash_attention_2")
    assert "flash-attn" in _refused(argv, capsys)


# --- 5: the global batch is stated, and accumulation derived from the world size -------------------------------


@pytest.mark.parametrize(("world", "per_device", "accumulation"), [(1, 16, 2), (2, 16, 1), (8, 4, 1), (8, 2, 2)])
def test_global_batch_size_derives_accumulation_from_the_world_size(monkeypatch, world, per_device, accumulation):
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: world))
    _, targs = _recipe_configs("cream-llama2-7b-32k-linear", "--per-device-train-batch-size", str(per_device))
    assert targs.gradient_accumulation_steps == accumulation
    assert targs.per_device_train_batch_size * targs.gradient_accumulation_steps * world == 32


def test_the_derived_accumulation_is_there_while_the_arguments_are_built(monkeypatch):
    """DeepSpeed's "auto" batch sizes are filled in TrainingArguments.__post_init__, so setting the accumulation
    on finished arguments would leave its config at the old value."""
    seen = []
    post_init = TrainingArguments.__post_init__

    def record(self):
        seen.append(self.gradient_accumulation_steps)
        post_init(self)

    monkeypatch.setattr(TrainingArguments, "__post_init__", record)
    _recipe_configs("cream-llama2-7b-32k-linear", "--per-device-train-batch-size", "8")
    assert seen[-1] == 4


def test_a_global_batch_the_processes_cannot_split_is_one_line(monkeypatch):
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 8))
    with pytest.raises(LongwinError, match="--per-device-train-batch-size 4"):
        _recipe_configs("cream-llama2-7b-32k-linear")  # 16 per device x 8 GPUs is 128, not the paper's 32
    with pytest.raises(LongwinError, match="--global-batch-size 36"):
        _recipe_configs("cream-llama2-7b-32k-linear", "--global-batch-size", "36")


def test_accumulation_given_with_a_global_batch_must_agree(monkeypatch):
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    with pytest.raises(LongwinError, match="--gradient-accumulation-steps"):
        _recipe_configs("cream-llama2-7b-32k-linear", "--gradient-accumulation-steps", "4")
    off = ["--global-batch-size", "0", "--gradient-accumulation-steps", "4"]
    _, targs = _recipe_configs("cream-llama2-7b-32k-linear", *off)
    assert targs.gradient_accumulation_steps == 4


def test_the_run_card_records_the_global_batch(tiny_setup, tmp_path):
    model_dir, corpus = tiny_setup
    out = tmp_path / "out"
    assert main(_train_args(model_dir, corpus, out, "--global-batch-size", "4", "--max-steps", "1")) == 0
    card = json.loads((out / "longwin_training.json").read_text())
    assert card["global_batch"] == 4 and card["training_arguments"]["gradient_accumulation_steps"] == 2


# --- 7: FSDP / DeepSpeed need a launcher ------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--fsdp", "full_shard"], ["--deepspeed", str(PRESETS / "deepspeed-zero3.json")]])
def test_sharding_without_a_launcher_says_how_to_launch(tiny_setup, tmp_path, capsys, no_loading, flags):
    model_dir, corpus = tiny_setup
    line = _refused(_train_args(model_dir, corpus, tmp_path / "out", *flags), capsys)
    assert "accelerate launch" in line and "torchrun" in line


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
def test_deepspeed_not_installed_names_the_extra(tiny_setup, tmp_path, monkeypatch, capsys, no_loading):
    model_dir, corpus = tiny_setup
    monkeypatch.setenv("WORLD_SIZE", "1")
    flags = ["--deepspeed", str(PRESETS / "deepspeed-zero1-offload.json")]
    assert "longwin[deepspeed]" in _refused(_train_args(model_dir, corpus, tmp_path / "out", *flags), capsys)


# --- 11: the FSDP wrap class comes from the model ---------------------------------------------------------------


def test_a_wrap_class_the_model_lacks_is_refused(tmp_path):
    model = make_tiny_llama()
    targs = TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    fsdp = {"ACCELERATE_USE_FSDP": "true"}
    check_model(model, targs, {**fsdp, "FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer"})
    check_model(model, targs, fsdp)  # none given: accelerate wraps the model's own _no_split_modules
    with pytest.raises(LongwinError, match="Qwen2DecoderLayer.*LlamaDecoderLayer"):
        check_model(model, targs, {**fsdp, "FSDP_TRANSFORMER_CLS_TO_WRAP": "Qwen2DecoderLayer"})
    targs.fsdp, targs.fsdp_config = True, {"transformer_layer_cls_to_wrap": ["GPT2Block"]}
    with pytest.raises(LongwinError, match="GPT2Block"):
        check_model(model, targs, {"WORLD_SIZE": "2"})


def test_a_wrong_wrap_class_is_refused_before_the_trainer(tiny_setup, tmp_path, monkeypatch, capsys):
    model_dir, corpus = tiny_setup
    _launched(monkeypatch, FSDP_TRANSFORMER_CLS_TO_WRAP="GPT2Block")
    assert "GPT2Block" in _refused(_train_args(model_dir, corpus, tmp_path / "out"), capsys, loaded=True)


# --- every preset x every recipe ---------------------------------------------------------------------------------


def _presets(ext: str) -> list[Path]:
    return sorted(PRESETS.glob(f"*.{ext}"))


@pytest.mark.parametrize("recipe", list_recipes())
@pytest.mark.parametrize("preset", [None, *_presets("yaml")], ids=lambda p: getattr(p, "stem", "no preset"))
def test_every_recipe_passes_preflight_under_every_launch_preset(recipe, preset):
    env = _accelerate_env(yaml.safe_load(preset.read_text())) if preset else {}
    config, targs = _recipe_configs(recipe)
    check_run(config, targs, env)


@pytest.mark.parametrize("preset", _presets("yaml"), ids=lambda p: p.stem)
def test_fsdp_presets_save_a_full_state_dict_and_let_the_model_name_its_layers(preset):
    fsdp = yaml.safe_load(preset.read_text())["fsdp_config"]
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp


@pytest.mark.parametrize("preset", _presets("json"), ids=lambda p: p.stem)
def test_deepspeed_presets_parse_and_leave_the_batch_to_the_trainer(preset):
    ds = json.loads(preset.read_text())
    assert ds["zero_optimization"]["stage"] in (1, 2, 3)
    batch = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")
    assert all(ds[key] == "auto" for key in batch)


def test_fsdp_asked_for_but_dropped_by_accelerate_is_refused_before_training():
    from types import SimpleNamespace

    from longwin.training.preflight import check_trainer

    targs = SimpleNamespace(fsdp="full_shard auto_wrap", fsdp_config={})
    with pytest.raises(LongwinError, match="FSDP was asked for"):
        check_trainer(SimpleNamespace(is_fsdp_enabled=False), targs, {})
    check_trainer(SimpleNamespace(is_fsdp_enabled=True), targs, {})
    check_trainer(SimpleNamespace(is_fsdp_enabled=False), SimpleNamespace(fsdp="", fsdp_config={}), {})
