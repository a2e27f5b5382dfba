"""longwin train: position ids reach attention, the CLI end to end, and every bad-input message."""

from __future__ import annotations

import json
import re

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from conftest import make_tiny_llama
from longwin import positions
from longwin.cli import main
from longwin.training.config import list_recipes


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_manipulated_position_ids_equal_reference_at_absolute_positions(attn):
    """Logits at CREAM ids == logits of the same tokens placed at those absolute positions in a long row
    whose other tokens are masked out, so the ids really reach the rotary attention."""
    model = make_tiny_llama(max_position_embeddings=256, attn_implementation=attn)
    pos = positions.sample("cream", 64, 256, seed=3)
    ids = torch.randint(3, 320, (1, 64), generator=torch.Generator().manual_seed(0))
    got = model(input_ids=ids, position_ids=pos[None]).logits

    length = int(pos[-1]) + 1
    long_ids = torch.full((1, length), 5)
    long_ids[0, pos] = ids[0]
    visible = torch.zeros(length, dtype=torch.bool)
    visible[pos] = True
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
    mask = (causal & visible[None, :])[None, None]
    mask4d = torch.zeros(1, 1, length, length).masked_fill(~mask, torch.finfo(torch.float32).min)
    ref = model(input_ids=long_ids, attention_mask=mask4d).logits[:, pos]
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    contiguous = model(input_ids=ids).logits
    assert not torch.allclose(got, contiguous, atol=1e-3), "position ids had no effect"


def _train_args(model_dir, corpus, out, *extra):
    return [
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(corpus),
        "--target-length",
        "256",
        "--max-steps",
        "3",
        "--per-device-train-batch-size",
        "2",
        "--use-cpu",
        "true",
        "--output-dir",
        str(out),
        "--learning-rate",
        "1e-3",
        "--save-steps",
        "100",
        "--disable-tqdm",
        "true",
        *extra,
    ]


@pytest.mark.parametrize("scheme,rope", [("cream", "linear"), ("pose", "yarn"), ("none", "ntk")])
def test_train_cli_saves_a_stock_transformers_model(tiny_setup, tmp_path, scheme, rope, capsys):
    model_dir, corpus = tiny_setup
    out = tmp_path / "out"
    assert main(_train_args(model_dir, corpus, out, "--scheme", scheme, "--rope", rope)) == 0
    config = AutoConfig.from_pretrained(out)
    assert config.max_position_embeddings == 256
    # the saved RoPE fields in the installed version's layout (5.x rope_parameters, 4.x rope_scaling)
    rope_params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    assert rope_params.get("rope_type", "default") == {"linear": "linear", "yarn": "yarn", "ntk": "default"}[rope]
    model = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), base.parameters())), "weights unchanged"
    card = json.loads((out / "longwin_training.json").read_text())
    assert card["scheme"] == scheme and card["steps"] == 3 and card["target_length"] == 256
    # the saved model and the untrained trial save both ran extended in a fresh process (issue #34)
    assert card["reload_check"]["final"]["passed"] and card["reload_check"]["preflight"]["passed"]
    assert "skipped 1 shorter than 64 tokens" in capsys.readouterr().err


def test_rope_options_reach_the_saved_config(tiny_setup, tmp_path):
    model_dir, corpus = tiny_setup
    out = tmp_path / "yarn"
    assert main(_train_args(model_dir, corpus, out, "--rope", "yarn", "--rope-options", "attention_factor=1.5")) == 0
    config = AutoConfig.from_pretrained(out)
    params = getattr(config, "rope_parameters", None) or config.rope_scaling  # 5.x / 4.x layout
    assert params["rope_type"] == "yarn" and params["attention_factor"] == 1.5
    assert json.loads((out / "longwin_training.json").read_text())["rope_options"] == {"attention_factor": 1.5}


def test_train_with_lora_saves_merged_model(tiny_setup, tmp_path):
    model_dir, corpus = tiny_setup
    out = tmp_path / "lora"
    assert main(_train_args(model_dir, corpus, out, "--lora", "true", "--lora-r", "4")) == 0
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--target-length", "64"], "must be above the native window 64"),
        (["--train-length", "128"], "is above the native window 64"),
        (["--scheme", "bogus"], "unknown position scheme 'bogus'"),
        (["--rope", "bogus"], "bogus"),
        (["--scheme-options", "colour=red"], "unknown option(s) colour"),
        (["--rope", "yarn", "--rope-options", "colour=red"], "unknown option(s) for RoPE method 'yarn': colour"),
        (["--rope-options", "attention_factor"], "rope option 'attention_factor' is not of the form key=value"),
        (["--train-length", "60", "--data", "SHORT"], "no training document has 60 tokens"),
    ],
)
def test_train_bad_input_is_one_line_exit_2(tiny_setup, tmp_path, capsys, extra, message):
    model_dir, corpus = tiny_setup
    short = tmp_path / "short.txt"
    short.write_text("just a few words")
    extra = [str(short) if x == "SHORT" else x for x in extra]
    assert main(_train_args(model_dir, corpus, tmp_path / "o", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and message in err[-1] and err[-1].startswith("longwin train: error:")


def test_train_refuses_model_without_rope(tmp_path, tiny_tokenizer, capsys):
    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=320, n_positions=64)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    assert main(["train", "--model", str(folder), "--target-length", "256", "--output-dir", str(tmp_path / "o")]) == 2
    assert "RoPE" in capsys.readouterr().err or "rope" in capsys.readouterr().err.lower()


def test_train_requires_target_length(capsys):
    assert main(["train", "--model", "toy"]) == 2
    assert "--target-length is required" in capsys.readouterr().err


def test_induction_supervision_can_stay_on_while_fine_tuning(tiny_setup, tmp_path, capsys):
    """--induction-weight trains with the auxiliary induction loss (eager attention) and saves a stock model
    with the requested kernel; the loss it logs differs from plain fine-tuning."""
    model_dir, corpus = tiny_setup
    plain, supervised = tmp_path / "plain", tmp_path / "supervised"
    assert main(_train_args(model_dir, corpus, plain, "--logging-steps", "1")) == 0
    assert main(_train_args(model_dir, corpus, supervised, "--logging-steps", "1", "--induction-weight", "1")) == 0
    cards = [json.loads((d / "longwin_training.json").read_text()) for d in (plain, supervised)]
    assert cards[0]["final_loss"] != cards[1]["final_loss"]
    assert AutoModelForCausalLM.from_pretrained(supervised).config._attn_implementation == "sdpa"
    assert (
        main(_train_args(model_dir, corpus, tmp_path / "x", "--induction-weight", "1", "--induction-match", "9")) == 2
    )
    assert "--induction-match must be at most 4" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_packaged_recipe_parses_on_the_installed_transformers(recipe):
    """A recipe key that the installed TrainingArguments lost (5.x dropped `warmup_ratio`) fails here, not on a
    GPU an hour into a job. bf16 is turned off only because this machine has no GPU."""
    import argparse

    from longwin.training.config import add_arguments, configs_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config, targs = configs_from_args(parser.parse_args(["--config", recipe, "--bf16", "false", "--use-cpu", "true"]))
    assert config.common.target_length > 0 and targs.max_steps > 0


def _parse(*argv: str):
    import argparse

    from longwin.training.config import add_arguments, configs_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return configs_from_args(parser.parse_args(list(argv)))


def test_recipe_sections_and_flat_keys_give_the_same_config(tmp_path):
    """A recipe nests method options under their section; the flat keys of older recipes mean the same."""
    from longwin.methods.lora import LoraOptions
    from longwin.methods.positions import PositionsOptions
    from longwin.methods.sharedllm.options import SharedLLMOptions

    nested = tmp_path / "nested.yaml"
    nested.write_text(
        "target_length: 2048\npositions:\n  scheme: pose\n  rope: yarn\n  scheme_options: sigma=3\n"
        "lora:\n  enabled: true\n  r: 4\nsharedllm:\n  chunk_size: 64\nmax_steps: 7\n"
    )
    flat = tmp_path / "flat.yaml"
    flat.write_text(
        "target_length: 2048\nscheme: pose\nrope: yarn\nscheme_options: sigma=3\nlora: true\nlora_r: 4\n"
        "sharedllm_chunk_size: 64\nmax_steps: 7\n"
    )
    a, targs_a = _parse("--config", str(nested))
    b, targs_b = _parse("--config", str(flat))
    assert a.to_dict() == b.to_dict() and targs_a.max_steps == targs_b.max_steps == 7
    assert a.get(PositionsOptions).scheme_options == {"sigma": 3}
    assert (a.get(LoraOptions).enabled, a.get(LoraOptions).r, a.get(SharedLLMOptions).chunk_size) == (True, 4, 64)
    assert a.get(SharedLLMOptions).lower_layers is None  # SharedLLMConfig's default applies
    flags, _ = _parse("--config", str(nested), "--scheme", "cream", "--lora-r", "16", "--sharedllm-chunk-size", "32")
    assert (flags.get(PositionsOptions).scheme, flags.get(LoraOptions).r) == ("cream", 16)
    assert flags.get(SharedLLMOptions).chunk_size == 32


@pytest.mark.parametrize(
    "recipe, message",
    [
        ("target_length: 2048\npositions:\n  schema: cream\n", "unknown positions option(s): schema"),
        ("target_length: 2048\nsharedllm: 4\n", "recipe key 'sharedllm' must hold a mapping"),
        ("target_length: 2048\nlora:\n  r: 0\n", "--lora-r must be at least 1, got 0"),
        ("target_length: 2048\nsharedllm:\n  kv_per_node: x\n", "--sharedllm-kv-per-node: expected an integer"),
        ("target_length: 2048\nnot_a_key: 1\n", "unknown recipe key(s): not_a_key"),
    ],
)
def test_bad_recipe_sections_fail_in_one_line_naming_the_flag(tmp_path, recipe, message):
    from longwin.errors import LongwinError

    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    with pytest.raises(LongwinError, match=re.escape(message)):
        _parse("--config", str(path))
