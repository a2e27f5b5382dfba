"""`longwin bench sharedllm`: the streaming baseline's attention pattern, the report, the command line."""

from __future__ import annotations

import json
import shlex

import pytest
import torch

from conftest import make_tiny_llama
from longwin import bench
from longwin.bench.report import build_report, markdown
from longwin.bench.streaming import streaming_prefill
from longwin.cli import build_parser, main
from longwin.flags import config_from_args

pytestmark = pytest.mark.usefixtures("one_thread")


def _stream(model, ids, sinks, window, segment):
    return streaming_prefill(model, ids, {"stream_sinks": sinks, "stream_window": window, "stream_segment": segment})


def test_streaming_prefill_attends_to_sinks_recent_window_and_its_own_segment():
    model = make_tiny_llama(layers=2)
    length, sinks, window, segment = 40, 2, 8, 8
    ids = torch.randint(3, 320, (1, length), generator=torch.Generator().manual_seed(0))
    allowed = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        seg_start = i // segment * segment
        for j in range(i + 1):
            allowed[i, j] = j < sinks or j >= seg_start - window
    reference = model(input_ids=ids, attention_mask=allowed[None, None]).logits[:, -1]
    streamed = _stream(model, ids, sinks, window, segment)[:, -1]
    torch.testing.assert_close(streamed, reference, rtol=1e-5, atol=1e-5)
    full = model(input_ids=ids).logits[:, -1]
    assert (streamed - full).abs().max() > 1e-3  # tokens really were evicted
    torch.testing.assert_close(_stream(model, ids, sinks, length, segment)[:, -1], full, rtol=1e-5, atol=1e-5)


def _fake_rows():
    rows = []
    for length in (2048, 4096):
        for method, t, mb in (("full", 4.0, 80.0), ("streaming", 2.0, 10.0), ("sharedllm", 1.0, 20.0)):
            rows.append({"method": method, "length": length, "time_s": t * length / 2048, "prefill_mb": mb})
    return rows


def test_report_ratios_and_a_command_that_reproduces_the_settings():
    parser, _ = build_parser()
    args = parser.parse_args(
        [
            "bench",
            "sharedllm",
            "--lengths",
            "2048,4096",
            "--methods",
            "full,streaming,sharedllm",
            "--sharedllm-chunk-size",
            "256",
            "--output",
            "out dir",
        ]
    )
    cfg = config_from_args(bench.SharedLLMBench, args)
    report = build_report(cfg, "random", _fake_rows())
    assert [r["length"] for r in report["ratios"]] == [2048, 4096]
    assert report["ratios"][0]["full_time_ratio"] == 4.0 and report["ratios"][0]["streaming_memory_ratio"] == 0.5
    again = config_from_args(bench.SharedLLMBench, parser.parse_args(shlex.split(report["command"])[1:]))
    assert again == cfg
    text = markdown(report)
    assert report["command"] in text and "| 4096 | sharedllm | 4.00 | 4.00 | 2.00 | 0.50 |" in text
    json.dumps(report)


def test_full_attention_at_a_reference_length_is_measured_first_and_set_against_every_sharedllm_prefill():
    cfg = bench.SharedLLMBench(lengths=[4096], methods=["sharedllm"], full_reference_length=2048)
    assert bench._measurements(cfg) == [("full", 2048), ("sharedllm", 4096)]
    both = bench.SharedLLMBench(lengths=[2048, 4096], methods=["full", "sharedllm"], full_reference_length=2048)
    assert bench._measurements(both).count(("full", 2048)) == 1  # measured once when also a benchmark length
    rows = [r for r in _fake_rows() if (r["method"], r["length"]) in {("full", 2048), ("sharedllm", 4096)}]
    report = build_report(cfg, "random", rows)
    assert report["ratios"] == [{"length": 4096, "sharedllm": "sharedllm", "reference_length": 2048,
                                 "reference_time_ratio": 2.0}]  # fmt: skip
    assert "| 4096 | sharedllm | 2.00 |" in markdown(report)
    assert "full at" not in markdown(build_report(bench.SharedLLMBench(lengths=[4096]), "random", rows))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--methods", "full,beacon"], "unknown prefill"),
        (["--lengths", "600", "--sharedllm-chunk-size", "512"], "no whole context chunk"),
    ],
)
def test_bad_settings_exit_with_code_2(flags, message, capsys):
    assert main(["bench", "sharedllm", *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_small_benchmark_run_writes_json_and_markdown(tmp_path):
    code = main(
        [
            "bench",
            "sharedllm",
            "--model",
            "random",
            "--lengths",
            "1024",
            "--sharedllm-local-length",
            "128",
            "--sharedllm-chunk-size",
            "256",
            "--sharedllm-kv-per-node",
            "8",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "sharedllm_bench.json").read_text())
    assert {r["method"] for r in report["results"]} == set(bench.PREFILLS)
    assert all(r["time_s"] > 0 and r["prefill_mb"] >= 0 for r in report["results"])
    assert (tmp_path / "sharedllm_bench.md").read_text().startswith("# SharedLLM prefill benchmark")
