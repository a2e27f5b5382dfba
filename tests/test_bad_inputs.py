"""A catalogue of bad inputs across every command: each gives exit code 2, one line on stderr, and leaves
nothing half-written where its output would go. Plus the cases where the right answer is a result, not an
error: a retrained model is evaluated anew, a partial checkpoint is skipped on resume.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import _TEXT, make_tiny_llama
from longwin.cli import main
from longwin.outputs import exclusive

QUICK_EVAL = ["--samples", "1", "--depths", "0", "--max-new-tokens", "2", "--progress", "false"]


@dataclass
class Case:
    id: str
    argv: list[str]  # {model} {corpus} {out} {file} {tmp} are filled in
    message: str  # must appear in the one error line
    setup: Callable[[Path], None] | None = None  # prepares files under the case's tmp folder


def _file(tmp: Path) -> None:
    (tmp / "file").write_text("not a folder")


def _yaml(text: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / "c.yaml").write_text(text)

    return setup


def _truncated_model(tmp: Path) -> None:
    shutil.copytree(tmp / "model", tmp / "broken")
    weights = tmp / "broken" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _pickled_model(tmp: Path) -> None:
    folder = tmp / "pickled"
    shutil.copytree(tmp / "model", folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weights": _Payload()}, folder / "pytorch_model.bin")


def _results(text: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for name in ("a", "b"):
            (tmp / name).mkdir()
            (tmp / name / "results.json").write_text(text)

    return setup


def _earlier_run(tmp: Path) -> None:
    (tmp / "out" / "checkpoint-2").mkdir(parents=True)
    (tmp / "out" / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')


def _partial_checkpoint(tmp: Path) -> None:
    (tmp / "out" / "checkpoint-3").mkdir(parents=True)
    (tmp / "out" / "checkpoint-3" / "config.json").write_text("{}")


def _corrupt_checkpoint(tmp: Path) -> None:
    folder = tmp / "out" / "checkpoint-3"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text('{"global_step": 3}')
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")


EVAL = ["eval", "--model", "{model}", "--task", "passkey", "--lengths", "256", "--out", "{out}", *QUICK_EVAL]
TRAIN = [
    "train",
    "--model",
    "{model}",
    "--data",
    "{corpus}",
    "--target-length",
    "256",
    "--max-steps",
    "2",
    "--per-device-train-batch-size",
    "2",
    "--use-cpu",
    "true",
    "--output-dir",
    "{out}",
    "--disable-tqdm",
    "true",
]

CASES = [
    # eval: values
    Case("eval-samples-negative", [*EVAL, "--samples", "-3"], "--samples must be at least 0"),
    Case("eval-lengths-huge", [*EVAL[:6], "99999999999", *EVAL[7:]], "GiB is free"),
    Case("eval-lengths-negative", [*EVAL[:6], "-5", *EVAL[7:]], "lengths must be positive"),
    Case("eval-lengths-not-numbers", [*EVAL[:6], "many", *EVAL[7:]], "invalid"),
    Case("eval-threads-negative", [*EVAL, "--threads", "-1"], "--threads must be at least 0"),
    Case("eval-batch-size-zero", [*EVAL, "--batch-size", "0"], "--batch-size must be at least 1"),
    Case("eval-depth-over-100", [*EVAL, "--depths", "150"], "--depths must be at most 100"),
    Case(
        "eval-target-length-negative",
        [*EVAL, "--rope", "yarn", "--target-length", "-1"],
        "--target-length must be at least 0",
    ),
    Case(
        "eval-target-length-huge",
        [*EVAL, "--rope", "yarn", "--target-length", "99999999999"],
        "past 16,777,216 positions",
    ),
    Case("eval-unknown-task", [*EVAL[:4], "bogus", *EVAL[5:]], "bogus"),
    # eval: YAML values are type-checked
    Case(
        "eval-yaml-samples-word",
        [*EVAL[:9], "--config", "{tmp}/c.yaml"],
        "--samples: expected an integer",
        _yaml('samples: "many"\n'),
    ),
    Case(
        "eval-yaml-bool-maybe",
        [*EVAL, "--config", "{tmp}/c.yaml"],
        "--chat-template: expected true or false",
        _yaml("chat_template: maybe\n"),
    ),
    Case(
        "eval-yaml-list-of-words",
        [*EVAL[:9], "--config", "{tmp}/c.yaml"],
        "--depths: expected a comma-separated list",
        _yaml("depths: [deep, shallow]\n"),
    ),
    Case("eval-yaml-not-a-mapping", [*EVAL, "--config", "{tmp}/c.yaml"], "must hold a mapping", _yaml("- a\n- b\n")),
    # eval: paths and models
    Case(
        "eval-out-is-a-file", [*EVAL[: -len(QUICK_EVAL) - 1], "{tmp}/file", *QUICK_EVAL], "is an existing file", _file
    ),
    Case(
        "eval-model-missing",
        ["eval", "--model", "{tmp}/nope", "--task", "passkey", "--lengths", "256", "--out", "{out}"],
        "no such file or folder",
    ),
    Case(
        "eval-model-truncated-weights",
        ["eval", "--model", "{tmp}/broken", "--task", "passkey", "--lengths", "256", "--out", "{out}"],
        "broken weights",
        _truncated_model,
    ),
    Case(
        "eval-model-pickle-payload",
        ["eval", "--model", "{tmp}/pickled", "--task", "passkey", "--lengths", "256", "--out", "{out}"],
        "refused",
        _pickled_model,
    ),
    Case(
        "eval-model-beside-compare",
        ["eval", "--compare", "{tmp}/a", "{tmp}/b", "--model", "{model}", "--out", "{out}"],
        "--compare reads finished result folders",
        _results('{"tasks": {}}'),
    ),
    Case(
        "eval-compare-malformed",
        ["eval", "--compare", "{tmp}/a", "{tmp}/b", "--out", "{out}"],
        "not a `longwin eval` results file",
        _results('{"tasks": {"passkey": {"series": [1, 2]}}}'),
    ),
    Case(
        "eval-compare-not-json",
        ["eval", "--compare", "{tmp}/a", "{tmp}/b", "--out", "{out}"],
        "not valid JSON",
        _results("{oops"),
    ),
    Case(
        "eval-compare-one-folder",
        ["eval", "--compare", "{tmp}/a", "--out", "{out}"],
        "at least two",
        _results('{"tasks": {}}'),
    ),
    # train: values
    Case("train-target-length-missing", TRAIN[:5] + TRAIN[7:], "--target-length is required"),
    Case("train-target-length-negative", [*TRAIN, "--target-length", "-1"], "--target-length must be at least 0"),
    Case("train-target-length-huge", [*TRAIN, "--target-length", "99999999999"], "past 16,777,216 positions"),
    Case(
        "train-target-too-far-for-cream",
        [*TRAIN, "--target-length", "100000"],
        "CREAM cannot reach a target 1562.5 times its 64-token training window",
    ),
    Case("train-target-not-above-native", [*TRAIN, "--target-length", "64"], "must be above the native window"),
    Case("train-fsdp-without-launcher", [*TRAIN, "--fsdp", "full_shard"], "started by a launcher: accelerate launch"),
    Case("train-global-batch-indivisible", [*TRAIN, "--global-batch-size", "3"], "--per-device-train-batch-size 1"),
    Case(
        "train-global-batch-contradicted",
        [*TRAIN, "--global-batch-size", "4", "--gradient-accumulation-steps", "3"],
        "contradicts --global-batch-size 4",
    ),
    Case(
        "train-batch-size-zero",
        [*TRAIN, "--per-device-train-batch-size", "0"],
        "--per-device-train-batch-size must be at least 1",
    ),
    Case("train-max-steps-negative", [*TRAIN, "--max-steps", "-1"], "--max-steps must be at least 1"),
    Case("train-learning-rate-word", [*TRAIN, "--learning-rate", "fast"], "invalid float value"),
    Case("train-val-fraction-over", [*TRAIN, "--val-fraction", "2"], "--val-fraction must be at most 0.9"),
    Case("train-lora-r-zero", [*TRAIN, "--lora-r", "0"], "--lora-r must be at least 1"),
    # train: YAML values are type-checked (a quoted "false" is false; "maybe" is an error)
    Case(
        "train-yaml-lora-maybe",
        [*TRAIN, "--config", "{tmp}/c.yaml"],
        "--lora: expected true or false",
        _yaml("lora: maybe\n"),
    ),
    Case(
        "train-yaml-target-words",
        [*TRAIN[:5], *TRAIN[7:], "--config", "{tmp}/c.yaml"],
        "--target-length: expected an integer",
        _yaml('target_length: "two thousand"\n'),
    ),
    Case(
        "train-yaml-learning-rate-word",
        [*TRAIN, "--config", "{tmp}/c.yaml"],
        "--learning-rate: expected a number",
        _yaml("learning_rate: fast\n"),
    ),
    Case(
        "train-yaml-fraction-over",
        [*TRAIN, "--config", "{tmp}/c.yaml"],
        "--retrieval-fraction must be at most 1",
        _yaml("retrieval_fraction: 1.5\n"),
    ),
    Case(
        "train-yaml-unknown-key",
        [*TRAIN, "--config", "{tmp}/c.yaml"],
        "unknown recipe key(s): colour",
        _yaml("colour: red\n"),
    ),
    Case("train-recipe-missing", [*TRAIN, "--config", "no-such-recipe"], "no recipe file or packaged recipe"),
    # train: the output folder
    Case("train-output-is-a-file", [*TRAIN[:-3], "{tmp}/file", *TRAIN[-2:]], "is an existing file", _file),
    Case("train-over-an-earlier-run", TRAIN, "already holds a training run (checkpoint-2)", _earlier_run),
    Case("train-resume-missing", [*TRAIN, "--resume-from-checkpoint", "{tmp}/nope"], "no such checkpoint folder"),
    Case(
        "train-resume-partial",
        [*TRAIN, "--resume-from-checkpoint", "{out}/checkpoint-3"],
        "incomplete or corrupt",
        _partial_checkpoint,
    ),
    Case(
        "train-resume-corrupt",
        [*TRAIN, "--resume-from-checkpoint", "{out}/checkpoint-3"],
        "model.safetensors",
        _corrupt_checkpoint,
    ),
    Case("train-resume-latest-none", [*TRAIN, "--resume-from-checkpoint", "true"], "holds no complete checkpoint"),
    Case(
        "train-resume-latest-only-partial",
        [*TRAIN, "--resume-from-checkpoint", "true"],
        "holds no complete checkpoint",
        _partial_checkpoint,
    ),
    # models
    Case("models-path-missing", ["models", "path", "{tmp}/nope"], "no such file or folder"),
    Case("models-path-truncated", ["models", "path", "{tmp}/broken"], "broken weights", _truncated_model),
    Case("models-path-text-file", ["models", "path", "{tmp}/file"], "not a model folder or a .gguf file", _file),
    # pretrain-toy, demo, bench
    Case(
        "pretrain-max-steps-negative",
        ["pretrain-toy", "--max-steps", "-1", "--output-dir", "{out}"],
        "--max-steps must be at least 1",
    ),
    Case(
        "pretrain-batch-size-zero",
        ["pretrain-toy", "--batch-size", "0", "--output-dir", "{out}"],
        "--batch-size must be at least 1",
    ),
    Case(
        "pretrain-output-is-a-file",
        ["pretrain-toy", "--max-steps", "1", "--output-dir", "{tmp}/file"],
        "is an existing file",
        _file,
    ),
    Case("demo-out-is-a-file", ["demo", "--out", "{tmp}/file"], "is an existing file", _file),
    Case("demo-unknown-method", ["demo", "--methods", "bogus", "--out", "{out}"], "unknown demo method"),
    Case("demo-samples-zero", ["demo", "--samples", "0", "--out", "{out}"], "--samples must be at least 1"),
    Case(
        "bench-threads-zero",
        ["bench", "sharedllm", "--threads", "0", "--output", "{out}"],
        "--threads must be at least 1",
    ),
    Case(
        "bench-too-short",
        ["bench", "sharedllm", "--lengths", "100", "--output", "{out}"],
        "leave no whole context chunk",
    ),
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_tokenizer):
    """A tiny saved model (window 64) and a small corpus, shared by every case (read-only)."""
    import random

    root = tmp_path_factory.mktemp("assets")
    make_tiny_llama(max_position_embeddings=64).save_pretrained(root / "model")
    tiny_tokenizer.save_pretrained(root / "model")
    rng = random.Random(0)
    with (root / "corpus.jsonl").open("w") as f:
        for i in range(10):
            f.write(json.dumps({"id": f"d{i}", "text": " ".join(rng.choice(_TEXT) for _ in range(30))}) + "\n")
    return root


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")} if folder.exists() else {}


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def test_catalogue_is_large_enough():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, assets, tmp_path, capsys, one_thread):
    shutil.copytree(assets / "model", tmp_path / "model")
    if case.setup:
        case.setup(tmp_path)
    out = tmp_path / "out"
    before = _snapshot(out)
    fill = {
        "model": tmp_path / "model",
        "corpus": assets / "corpus.jsonl",
        "out": out,
        "tmp": tmp_path,
        "file": tmp_path / "file",
    }
    argv = [arg.format(**fill) for arg in case.argv]
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert len(err) == 1, err
    assert err[0].startswith("longwin"), err
    assert case.message in err[0], err[0]
    assert _snapshot(out) == before, "the failed command changed its output folder"
    leftovers = [p.name for p in tmp_path.iterdir() if "staging" in p.name or p.name.endswith(".tmp")]
    assert not leftovers


def test_a_second_eval_into_a_busy_folder_is_refused(assets, tmp_path, capsys, one_thread):
    out = tmp_path / "out"
    with exclusive(out, "longwin eval"):
        code, err = run_cli(
            [
                "eval",
                "--model",
                str(assets / "model"),
                "--task",
                "passkey",
                "--lengths",
                "256",
                "--out",
                str(out),
                *QUICK_EVAL,
            ],
            capsys,
        )
    # the lock is taken once the model is loaded: only transformers' loading bar comes before the one line
    assert code == 2 and "another longwin eval is writing to" in err[-1] and "Traceback" not in "".join(err)
    assert not (out / "cells.jsonl").exists()


def test_a_full_disk_is_one_line_and_leaves_no_torn_results(assets, tmp_path, capsys, monkeypatch, one_thread):
    import longwin.outputs

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "results.json")

    monkeypatch.setattr(longwin.outputs, "write_bytes", full)
    out = tmp_path / "out"
    code, err = run_cli(
        [
            "eval",
            "--model",
            str(assets / "model"),
            "--task",
            "passkey",
            "--lengths",
            "256",
            "--out",
            str(out),
            *QUICK_EVAL,
        ],
        capsys,
    )
    assert code == 2 and err[-1] == "longwin eval: error: No space left on device (results.json)"
    assert "Traceback" not in "".join(err)
    assert not (out / "results.json").exists()


def test_yaml_strings_convert_as_flags_do():
    from longwin.methods.lora import LoraOptions
    from longwin.training.config import train_config

    assert train_config({"lora": "false"}).get(LoraOptions).enabled is False  # it used to turn LoRA on
    config = train_config(
        {"lora": "yes", "target_length": "2048", "retrieval_fraction": "5e-1", "lora_target": "q_proj,v_proj"}
    )
    lora = config.get(LoraOptions)
    assert (lora.enabled, config.common.target_length, config.common.retrieval_fraction) == (True, 2048, 0.5)
    assert lora.target == ["q_proj", "v_proj"]


def _train(model: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        str(model),
        "--data",
        str(corpus),
        "--target-length",
        "256",
        "--max-steps",
        "4",
        "--per-device-train-batch-size",
        "2",
        "--use-cpu",
        "true",
        "--output-dir",
        str(out),
        "--save-steps",
        "2",
        "--disable-tqdm",
        "true",
        "--learning-rate",
        "1e-3",
        "--report-to",
        "none",
        *extra,
    ]


def test_retraining_into_the_same_folder_is_evaluated_anew(assets, tmp_path, capsys, one_thread):
    model, corpus, out, runs = assets / "model", assets / "corpus.jsonl", tmp_path / "out", tmp_path / "runs"
    evaluation = [
        "eval",
        "--model",
        str(out),
        "--task",
        "ppl",
        "--lengths",
        "256",
        "--out",
        str(runs),
        "--corpus",
        str(corpus),
        "--progress",
        "false",
    ]
    assert main(_train(model, corpus, out, "--max-steps", "2")) == 0
    assert main(evaluation) == 0
    first = json.loads((runs / "results.json").read_text())["tasks"]["ppl"]["series"]
    capsys.readouterr()
    assert main(evaluation) == 0
    assert "(0 to compute)" in capsys.readouterr().err  # the same model: cached, and it says so
    code, err = run_cli(_train(model, corpus, out, "--max-steps", "2", "--learning-rate", "5e-2"), capsys)
    assert code == 2 and "already holds a training run" in err[0]  # no silent restart
    assert (
        main(
            _train(model, corpus, out, "--max-steps", "2", "--learning-rate", "5e-2", "--overwrite-output-dir", "true")
        )
        == 0
    )
    assert not (out / "checkpoint-4").exists()
    capsys.readouterr()
    assert main(evaluation) == 0
    assert "reusing" not in capsys.readouterr().err
    second = json.loads((runs / "results.json").read_text())["tasks"]["ppl"]["series"]
    assert second != first


def test_a_kill_during_checkpoint_save_resumes_from_the_last_complete_one(assets, tmp_path, capsys, one_thread):
    """The save of checkpoint-4 was cut short (trainer state never written, weights truncated, the final
    model never saved): resuming removes it, says so, continues from checkpoint-2 and ends with the very
    model an uninterrupted run makes."""
    model, corpus = assets / "model", assets / "corpus.jsonl"
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_train(model, corpus, whole)) == 0
    assert main(_train(model, corpus, cut)) == 0
    for name in ("longwin_training.json", "model.safetensors"):
        (cut / name).unlink()
    (cut / "checkpoint-4" / "trainer_state.json").unlink()
    weights = cut / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    capsys.readouterr()
    assert main(_train(model, corpus, cut, "--resume-from-checkpoint", "true")) == 0
    err = capsys.readouterr().err
    assert f"removing incomplete {cut / 'checkpoint-4'}" in err
    assert f"resuming from {cut / 'checkpoint-2'}" in err
    assert (cut / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert not (cut / ".final-staging").exists()


def test_pickle_payload_is_never_run(assets, tmp_path, capsys):
    shutil.copytree(assets / "model", tmp_path / "model")
    _pickled_model(tmp_path)
    marker = tmp_path / "ran"
    torch.save({"w": _Touch(marker)}, tmp_path / "pickled" / "pytorch_model.bin")
    code, err = run_cli(["models", "path", str(tmp_path / "pickled")], capsys)
    assert code == 0  # a folder with a whole zip archive resolves; loading it is what refuses
    code, err = run_cli(
        [
            "eval",
            "--model",
            str(tmp_path / "pickled"),
            "--task",
            "passkey",
            "--lengths",
            "256",
            "--out",
            str(tmp_path / "out"),
            *QUICK_EVAL,
        ],
        capsys,
    )
    assert code == 2 and len(err) == 1 and not marker.exists()


class _Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))
