"""`longwin eval` and `longwin eval --compare`: exit codes, one-line errors, files written."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from conftest import make_tiny_llama
from longwin.cli import main
from longwin.eval import evaluate

QUICK = ["--samples", "1", "--depths", "0,100", "--max-new-tokens", "3", "--progress", "false"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer):
    folder = tmp_path_factory.mktemp("tiny-model")
    make_tiny_llama().save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_eval_from_a_model_folder(tmp_path, model_dir, capsys):
    out = tmp_path / "run"
    code = main(
        ["eval", "--model", str(model_dir), "--task", "passkey", "--lengths", "256,300", "--out", str(out), *QUICK]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "| passkey | accuracy | accuracy (%) | 0.00 | 0.00 |" in stdout
    assert "4 cell(s) exceed the model's configured window of 64 tokens" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == str(model_dir) and results["tasks"]["passkey"]["cells"] == 4
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4


def test_training_free_rope_scaling_is_applied_and_named(tmp_path, model_dir):
    out = tmp_path / "yarn"
    assert (
        main(
            [
                "eval",
                "--model",
                str(model_dir),
                "--rope",
                "yarn",
                "--target-length",
                "256",
                "--task",
                "passkey",
                "--lengths",
                "200",
                "--out",
                str(out),
                *QUICK,
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["window"] == 256 and results["tasks"]["passkey"]["exceeds_window"] == 0
    assert results["model"] == f"{model_dir} (yarn RoPE to 256, training-free)"


def test_truncation_baseline_sees_only_the_last_tokens(tmp_path, model_dir, tiny_tokenizer):
    from longwin.eval.model import CausalLMAdapter, Prompt, TruncatingAdapter
    from longwin.models import load_model

    model, tokenizer = load_model(str(model_dir))
    full, cut = CausalLMAdapter(model, tokenizer), TruncatingAdapter(model, tokenizer, keep=16)
    ids = list(range(3, 103))
    prompt = Prompt(ids, 90)
    assert cut.generate([prompt], 4) == full.generate([Prompt(ids[-16:], 6)], 4)
    total, count = _summed(cut.token_nll(ids, 50))
    assert count == 50
    pieces = [(92, 100), (84, 92), (76, 84), (68, 76), (60, 68), (52, 60), (50, 52)]  # (first, end), keep/2 = 8
    expected = sum(_summed(full.token_nll(ids[max(0, e - 16) : e], f - max(0, e - 16)))[0] for f, e in pieces)
    assert total == pytest.approx(expected, rel=1e-5)
    bos = tokenizer.bos_token_id  # a sequence that starts with BOS keeps it in front of its last keep - 1 tokens
    assert cut.generate([Prompt([bos, *ids], 91)], 4) == full.generate([Prompt([bos, *ids[-15:]], 6)], 4)
    total, count = _summed(cut.token_nll([bos, *ids], 51))
    assert count == 50
    expected = sum(
        _summed(full.token_nll([bos, *ids[max(0, e - 15) : e]], f - max(0, e - 15) + 1))[0] for f, e in pieces
    )
    assert total == pytest.approx(expected, rel=1e-5)
    out = tmp_path / "trunc"
    assert (
        main(
            [
                "eval",
                "--model",
                str(model_dir),
                "--truncate",
                "32",
                "--task",
                "passkey",
                "--lengths",
                "200",
                "--out",
                str(out),
                *QUICK,
            ]
        )
        == 0
    )
    assert json.loads((out / "results.json").read_text())["model"].endswith("(truncated to the last 32 tokens)")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--truncate", "1"], "--truncate must keep at least 2 tokens"),
        (["--rope", "yarn"], "--rope needs --target-length"),
        (["--target-length", "256"], "--target-length without --rope does nothing"),
        (["--rope", "bogus", "--target-length", "256"], "bogus"),
        pytest.param(
            ["--device", "cuda"],
            "no CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible"),
        ),
    ],
)
def test_loading_options_bad_input(tmp_path, model_dir, capsys, argv, message):
    code = main(
        [
            "eval",
            "--model",
            str(model_dir),
            "--task",
            "passkey",
            "--lengths",
            "100",
            "--out",
            str(tmp_path / "o"),
            *QUICK,
            *argv,
        ]
    )
    assert code == 2
    assert message in error_line(capsys)


def test_yaml_config_and_flags(tmp_path, model_dir):
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"model: {model_dir}\ntask: [passkey]\nlengths: [256]\nsamples: 1\ndepths: [50]\n"
        "max_new_tokens: 2\nprogress: false\n"
    )
    out = tmp_path / "run"
    assert main(["eval", "--config", str(config), "--out", str(out), "--seed", "7"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == 7 and results["lengths"] == [256]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "passkey,nope", "--lengths", "256"], "unknown task 'nope'"),
        (["--task", "passkey"], "no lengths given"),
        (["--task", "longbench", "--lengths", "256"], "longbench needs --data-dir"),
        (["--task", "longbench", "--lengths", "256", "--data-dir", "/nonexistent"], "LongBench data folder not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, model_dir, capsys, argv, message):
    assert main(["eval", "--model", str(model_dir), "--out", str(tmp_path), *argv]) == 2
    assert message in error_line(capsys)


def test_missing_model_and_out(tmp_path, capsys):
    assert main(["eval", "--task", "passkey", "--lengths", "256", "--out", str(tmp_path)]) == 2
    assert "--model is required" in error_line(capsys)
    assert main(["eval", "--model", "x", "--task", "passkey", "--lengths", "256"]) == 2
    assert "--out is required" in error_line(capsys)


def test_model_folder_without_tokenizer(tmp_path, capsys):
    folder = tmp_path / "no-tokenizer"
    make_tiny_llama().save_pretrained(folder)
    capsys.readouterr()  # drop save_pretrained's progress output
    assert (
        main(
            [
                "eval",
                "--model",
                str(folder),
                "--task",
                "passkey",
                "--lengths",
                "256",
                "--out",
                str(tmp_path / "out"),
                *QUICK,
            ]
        )
        == 2
    )
    assert "tokenizer" in error_line(capsys)


class Fixed:
    """A fake EvalModel that always answers the same text (different runs -> different scores)."""

    window, position_limit = 1024, None

    def __init__(self, name, tokenizer, answer):
        self.name, self.tokenizer, self.answer = name, tokenizer, answer
        self.identity = f"fixed:{answer}"

    def memory_needed(self, tokens, cache=True):
        return tokens

    def generate(self, prompts, max_new_tokens):
        return [self.tokenizer(self.answer, add_special_tokens=False)["input_ids"] for _ in prompts]

    def token_nll(self, ids, score_from):
        return torch.full((len(ids) - score_from,), 1.5)


def test_compare_runs_side_by_side(tmp_path, tiny_tokenizer, capsys):
    runs = []
    for name, answer in (("base", "no idea"), ("extended", "eat a sandwich and sit in Dolores Park")):
        runs.append(tmp_path / name)
        evaluate(
            Fixed(name, tiny_tokenizer, answer),
            "needle,ppl",
            [256, 512],
            runs[-1],
            samples=1,
            depths=[50.0],
            conventions=["chunks"],
            progress=False,
        )
    out = tmp_path / "cmp"
    assert main(["eval", "--compare", *map(str, runs), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| task | series | length | base | extended |" in table
    assert "| needle | exact | 256 | 0.00 | 100.00 |" in table
    assert "| ppl | chunks | 512 | 4.48 | 4.48 |" in table
    with (out / "compare.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["task", "series", "length", "base", "extended"] and len(rows) == 1 + 2 * 2 + 2
    assert (out / "compare_needle.png").exists() and (out / "compare_ppl.png").exists()


def test_compare_errors(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert main(["eval", "--compare", str(tmp_path / "a"), "--out", str(tmp_path / "o")]) == 2
    assert "at least two" in error_line(capsys)
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2
    assert "no results.json" in error_line(capsys)


def _summed(losses):
    return float(losses.sum()), len(losses)
