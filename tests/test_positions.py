"""Position schemes: structural properties for every scheme, and CREAM's distribution against the note."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longwin.errors import LongwinError
from longwin.positions import SCHEMES, DocumentTooShort, Layout, cream_alpha_pmf, layout, sample, sample_alpha
from longwin.positions.alpha import r_from_uniform
from longwin.positions.cream import middle_bounds

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# docs/position-schemes.md#alpha, s = 8: P(r) for r = 2..16, alpha = r / 2.
NOTE_PMF_S8 = [0.023, 0.025, 0.043, 0.067, 0.094, 0.117, 0.131, 0.131, 0.117, 0.094, 0.067, 0.043, 0.025, 0.013, 0.010]


def _strictly_increasing(t: torch.Tensor) -> bool:
    return bool((t[1:] > t[:-1]).all())


@st.composite
def windows(draw, scheme: str):
    """(train_len, target_len, doc_len, seed) valid for `scheme`, including non-integer scales: what the registry
    says (`extends`: train_len < target_len), narrowed where a scheme's own constraints need it (CREAM)."""
    if scheme == "cream":
        train_len = draw(st.integers(24, 600))
        # continuity k = ceil(4s) must leave a middle: 2k < train_len.
        target_len = draw(st.integers(train_len + 1, train_len * ((train_len - 1) // 2) // 4))
    elif not SCHEMES[scheme].extends:
        train_len = draw(st.integers(1, 600))
        target_len = draw(st.integers(train_len, 40 * train_len))
    else:
        train_len = draw(st.integers(2, 600))
        target_len = draw(st.integers(train_len + 1, 40 * train_len))
    doc_len = draw(st.integers(train_len, 2 * target_len))
    return train_len, target_len, doc_len, draw(st.integers(0, 2**63))


def _check_common(scheme: str, train_len: int, target_len: int, doc_len: int, seed: int) -> Layout:
    out = layout(scheme, doc_len, train_len, target_len, seed=seed)
    pos, idx = out.position_ids, out.token_index
    assert pos.dtype == idx.dtype == torch.long
    assert pos.shape == idx.shape == (train_len,)
    assert _strictly_increasing(pos) and _strictly_increasing(idx)
    assert 0 <= int(pos[0]) and int(pos[-1]) < target_len
    assert 0 <= int(idx[0]) and int(idx[-1]) < doc_len
    assert out.segments[0][1] == 0 and out.segments[-1][2] == train_len
    assert all(a[2] == b[1] for a, b in zip(out.segments, out.segments[1:]))
    assert all(start < end for _, start, end in out.segments)
    again = layout(scheme, doc_len, train_len, target_len, seed=seed)
    assert torch.equal(again.position_ids, pos) and torch.equal(again.token_index, idx)
    assert torch.equal(sample(scheme, train_len, target_len, seed=seed), pos)
    return out


@FAST
@given(st.sampled_from(sorted(SCHEMES)).flatmap(lambda s: st.tuples(st.just(s), windows(s))))
def test_every_registered_scheme_has_the_layout_properties(case):
    """Strictly increasing ids in range, `sample` equal to `layout`, determinism per seed: for every scheme in
    the registry, so a new scheme is checked without naming it here (docs/architecture.md)."""
    scheme, window = case
    _check_common(scheme, *window)


@FAST
@given(windows("cream"))
def test_cream_layout_properties(window):
    train_len, target_len, doc_len, seed = window
    out = _check_common("cream", *window)
    pos, idx = out.position_ids, out.token_index
    (_, _, head), (_, m0, m1), (_, t0, _) = out.segments
    tail = train_len - t0
    assert int(pos[0]) == 0 and int(pos[-1]) == target_len - 1
    assert torch.equal(pos[:head], torch.arange(head))
    assert torch.equal(pos[t0:], torch.arange(target_len - tail, target_len))
    assert torch.equal(pos[m0:m1], torch.arange(int(pos[m0]), int(pos[m0]) + m1 - m0))
    assert head in (-(-4 * target_len // train_len), train_len // 3) and head == tail
    assert torch.equal(idx[:head], torch.arange(head))
    assert torch.equal(idx[t0:], torch.arange(doc_len - tail, doc_len))
    if int(pos[m1 - 1]) < doc_len - tail:
        assert torch.equal(idx[m0:m1], pos[m0:m1])
    else:
        assert int(idx[m1 - 1]) == doc_len - tail - 1


@FAST
@given(st.integers(0, 2**32), st.floats(0.0, 0.999), st.sampled_from([0.0, 1.0]))
def test_cream_middle_never_overlaps_tail_tokens(seed, where, p):
    """Documents ending just after the middle's last position (the reference duplicated tokens there)."""
    train_len, target_len = 256, 2048
    pos = sample("cream", train_len, target_len, seed=seed, p_continuity=p)
    tail = 32 if p == 1.0 else 85
    end = int(pos[train_len - tail - 1])
    doc_len = max(train_len, end + 1 + int(where * tail))  # end lies within the document's last tail tokens
    idx = layout("cream", doc_len, train_len, target_len, seed=seed, p_continuity=p).token_index
    assert _strictly_increasing(idx)
    assert torch.equal(idx[-tail - (train_len - 2 * tail) :], torch.arange(doc_len - train_len + tail, doc_len))


@FAST
@given(windows("pose"))
def test_pose_layout_properties(window):
    train_len, target_len, doc_len, seed = window
    out = _check_common("pose", *window)
    pos, idx = out.position_ids, out.token_index
    (name1, _, first), (name2, _, _) = out.segments
    assert (name1, name2) == ("chunk1", "chunk2")
    assert 1 <= first <= (train_len + 1) // 2
    assert torch.equal(pos[:first], torch.arange(first)) and torch.equal(idx[:first], torch.arange(first))
    skip, offset = int(pos[first]) - first, int(idx[first]) - first
    assert 0 <= skip <= target_len - train_len
    assert 0 <= offset <= min(doc_len, target_len) - train_len
    assert torch.equal(pos[first:], torch.arange(first, train_len) + skip)
    assert torch.equal(idx[first:], torch.arange(first, train_len) + offset)


@FAST
@given(st.sampled_from(["randpos", "none", "full"]).flatmap(lambda s: st.tuples(st.just(s), windows(s))))
def test_simple_layout_properties(case):
    scheme, window = case
    train_len = window[0]
    out = _check_common(scheme, *window)
    assert torch.equal(out.token_index, torch.arange(train_len))
    assert out.segments == (("window", 0, train_len),)
    if scheme != "randpos":
        assert torch.equal(out.position_ids, torch.arange(train_len))


def test_full_allows_train_at_target_length():
    assert torch.equal(sample("full", 64, 64, seed=0), torch.arange(64))


@pytest.mark.parametrize("scheme", ["cream", "pose", "randpos"])
def test_different_seeds_give_different_samples(scheme):
    outs = {tuple(sample(scheme, 512, 4096, seed=seed).tolist()) for seed in range(20)}
    assert len(outs) >= 19


def test_sample_does_not_touch_global_rng():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    for scheme in SCHEMES:
        layout(scheme, 5000, 256, 2048, seed=7)
    assert torch.equal(torch.rand(3), before)


# ---- CREAM distribution vs docs/position-schemes.md ------------------------------------------------------


def test_alpha_pmf_matches_note_table_at_s8():
    pmf = cream_alpha_pmf(8.0)
    assert list(pmf) == [r / 2 for r in range(2, 17)]
    assert [abs(pmf[r / 2] - p) < 0.002 for r, p in zip(range(2, 17), NOTE_PMF_S8)] == [True] * 15
    assert math.isclose(sum(pmf.values()), 1.0, abs_tol=1e-12)
    assert abs(sum(a * p for a, p in pmf.items()) - 4.255) < 0.0005


def test_sampled_alpha_matches_pmf_at_s8():
    alpha = sample_alpha(8.0, 40_000, generator=torch.Generator().manual_seed(0))
    assert abs(alpha.mean().item() - 4.255) < 0.03
    pmf = cream_alpha_pmf(8.0)
    for a, p in pmf.items():
        assert abs((alpha == a).double().mean().item() - p) < 0.01


@pytest.mark.parametrize("s", [4, 8, 16])
def test_faithful_mode_reproduces_reference_grid_lookup(s):
    """Same uniforms through the reference's np.interp table (§2.3) give the same r almost always."""
    mu = 1 + s
    grid = np.linspace(2, 2 * s, 1000)
    cdf = 0.5 * (1 + np.array([math.erf((x - mu) / (3.0 * math.sqrt(2))) for x in grid]))
    u = np.random.default_rng(s).random(50_000)
    reference = np.interp(u, cdf, grid).astype(np.int64)
    ours = r_from_uniform(torch.from_numpy(u), float(s), sigma=3.0, mode="faithful").numpy()
    assert (reference == ours).mean() > 0.999


def test_faithful_has_boundary_point_masses_at_s4_and_truncated_does_not():
    faithful = cream_alpha_pmf(4.0)
    assert abs(faithful[1.0] - 0.25) < 0.005 and abs(faithful[4.0] - 0.16) < 0.005
    truncated = cream_alpha_pmf(4.0, mode="truncated")
    assert truncated[1.0] < truncated[1.5] < truncated[2.0] and truncated[4.0] == 0.0
    assert math.isclose(sum(truncated.values()), 1.0, abs_tol=1e-12)
    alpha = sample_alpha(4.0, 20_000, mode="truncated", generator=torch.Generator().manual_seed(1))
    assert alpha.min().item() == 1.0 and alpha.max().item() == 3.5
    for a, p in truncated.items():
        assert abs((alpha == a).double().mean().item() - p) < 0.012


def test_worked_example_bounds_from_note():
    # §2.7: s = 8, r = 9: relativity P_e in {7507..17066}, continuity P_e in {18171..18399}.
    assert middle_bounds(9, 1365, 1365, 4096) == (7507, 17066)
    assert middle_bounds(9, 32, 32, 4096) == (18171, 18399)


@pytest.mark.parametrize(
    "regime, p, note_end, note_start", [("continuity", 1.0, 0.53, 0.41), ("relativity", 0.0, 0.36, 0.31)]
)
def test_middle_location_matches_note_at_s8(regime, p, note_end, note_start):
    train_len, target_len = 4096, 32768
    head = 32 if regime == "continuity" else 1365
    pmf = cream_alpha_pmf(8.0)
    exact_end = sum(q * sum(middle_bounds(int(2 * a), head, head, train_len)) / 2 for a, q in pmf.items())
    middle = train_len - 2 * head
    assert abs(exact_end / target_len - note_end) < 0.006
    assert abs((exact_end - middle + 1) / target_len - note_start) < 0.006
    ends = torch.tensor(
        [sample("cream", train_len, target_len, seed=i, p_continuity=p)[head + middle - 1].item() for i in range(2000)],
        dtype=torch.float64,
    )
    standard_error = ends.std().item() / math.sqrt(len(ends))
    assert abs(ends.mean().item() - exact_end) < 4 * standard_error


def test_regime_is_drawn_per_example():
    heads = [layout("cream", 4096, 256, 2048, seed=i).segments[0][2] for i in range(600)]
    assert set(heads) == {32, 85}  # toy sizes: continuity 4s = 32, relativity 256 // 3 = 85
    assert abs(heads.count(32) / len(heads) - 0.5) < 0.07
    rare = [layout("cream", 4096, 256, 2048, seed=i, p_continuity=0.2).segments[0][2] for i in range(600)]
    assert abs(rare.count(32) / len(rare) - 0.2) < 0.06
    runs = sum(a != b for a, b in zip(heads, heads[1:]))
    assert runs > 200  # not one regime per long batch of examples


def test_paper_scale_256k():
    alphas = []
    for seed in range(50):
        pos = sample("cream", 4096, 262144, seed=seed, p_continuity=1.0)
        assert int(pos[0]) == 0 and int(pos[-1]) == 262143 and _strictly_increasing(pos)
        alphas.append(int(pos[4096 - 256 - 1]) / 4096)  # P_e ~ alpha·N in continuity
    assert 28 < sum(alphas) / len(alphas) < 35  # alpha ~ N(32.25, 1.5²) at s = 64


def test_non_integer_scale_is_supported():
    out = layout("cream", 1500, 300, 1000, seed=3, p_continuity=1.0)  # s = 10/3
    assert out.segments[0] == ("head", 0, 14)  # k = ceil(4s) = 14
    assert int(out.position_ids[-1]) == 999
    assert max(cream_alpha_pmf(1000 / 300)) == 3.0  # alpha <= floor(2s) / 2 <= s
    for r in range(2, 7):
        low, high = middle_bounds(r, 100, 100, 300)
        assert 100 + 99 <= low <= high <= 1000 - 100 - 1


def test_options_override_head_and_tail():
    out = layout("cream", 4096, 256, 2048, seed=0, p_continuity=1.0, head_len=5, continuity_tail_len=7)
    assert [s[2] - s[1] for s in out.segments] == [5, 256 - 12, 7]
    out = layout("cream", 4096, 256, 2048, seed=0, p_continuity=0.0, head_len=5)
    assert [s[2] - s[1] for s in out.segments] == [5, 256 - 90, 85]


# ---- validation ----------------------------------------------------------------------------------


def documented_schemes() -> set[str]:
    """The schemes named in the first column of docs/position-schemes.md's scheme table."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "position-schemes.md"
    lines = doc.read_text().splitlines()
    start = lines.index("| scheme | positions | tokens |") + 2
    names: set[str] = set()
    for line in itertools.takewhile(lambda text: text.startswith("|"), lines[start:]):
        names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_registry_matches_the_documented_schemes_and_each_has_a_description():
    assert set(SCHEMES) == documented_schemes()
    assert all(scheme.description for scheme in SCHEMES.values())
    with pytest.raises(TypeError):
        SCHEMES["x"] = SCHEMES["none"]  # type: ignore[index]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sample("yarn", 8, 16, seed=0), "known: " + ", ".join(sorted(SCHEMES))),
        (lambda: sample("cream", 4096, 4096, seed=0), "must be smaller than target_len"),
        (lambda: sample("randpos", 64, 32, seed=0), "must be smaller than target_len"),
        (lambda: sample("none", 64, 32, seed=0), "must not exceed target_len"),
        (lambda: sample("cream", 0, 32, seed=0), "train_len must be a positive integer"),
        (lambda: sample("none", 8, -1, seed=0), "target_len must be a positive integer"),
        (
            lambda: sample("cream", 16, 1024, seed=0),
            "CREAM cannot reach a target 64 times its 16-token training window",
        ),
        (lambda: sample("cream", 256, 2048, seed=0, sigma=0), "sigma must be"),
        (lambda: sample("cream", 256, 2048, seed=0, mode="clamped"), "unknown alpha mode"),
        (lambda: sample("cream", 256, 2048, seed=0, p_continuity=1.5), "p_continuity"),
        (lambda: sample("cream", 256, 2048, seed=0, head_len=0), "head_len must be a positive integer"),
        (lambda: sample("pose", 256, 2048, seed=0, sigma=3.0), "accepted: none"),
        (lambda: sample("pose", 1, 2048, seed=0), "train_len >= 2"),
        (lambda: sample("none", 8, 16, seed=-1), "seed must be"),
        (lambda: layout("none", -3, 8, 16, seed=0), "doc_len must be"),
    ],
)
def test_invalid_input_raises_one_line_longwin_error(call, message):
    with pytest.raises(LongwinError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not isinstance(info.value, DocumentTooShort)


def test_relativity_only_does_not_need_a_valid_continuity_regime():
    pos = sample("cream", 16, 1024, seed=0, p_continuity=0.0)
    assert int(pos[0]) == 0 and int(pos[-1]) == 1023


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_short_document_raises_document_too_short(scheme):
    with pytest.raises(DocumentTooShort, match="needs at least 256"):
        layout(scheme, 255, 256, 2048, seed=0)
    assert issubclass(DocumentTooShort, LongwinError)
    layout(scheme, 256, 256, 2048, seed=0)


def test_bad_configuration_wins_over_short_document():
    with pytest.raises(LongwinError) as info:
        layout("cream", 10, 16, 1024, seed=0)
    assert not isinstance(info.value, DocumentTooShort)


def test_endprompt_layout_matches_the_reference_code_by_hand():
    """`preprocess_fixed_split_pose` with N = 8, c = 3, final position L-1 = 31 (hand-worked): ids 0..4, then
    29, 30, 31; the tokens are the window's own, in order; the default c is 20 (N // 2 below 40 tokens)."""
    out = layout("endprompt", 50, 8, 32, seed=7, terminal_len=3)
    assert out.position_ids.tolist() == [0, 1, 2, 3, 4, 29, 30, 31]
    assert out.token_index.tolist() == list(range(8))
    assert out.segments == (("context", 0, 5), ("terminal", 5, 8))
    assert sample("endprompt", 64, 65536, seed=0)[-20:].tolist() == list(range(65516, 65536))
    assert sample("endprompt", 64, 65536, seed=0)[:44].tolist() == list(range(44))
    assert sample("endprompt", 10, 100, seed=0).tolist() == [0, 1, 2, 3, 4, 95, 96, 97, 98, 99]
    with pytest.raises(LongwinError, match="terminal_len"):
        sample("endprompt", 8, 32, seed=0, terminal_len=8)
