"""Context-tree planning without a model: tiling, KV counts, noise, policies, chunking."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from longwin.errors import LongwinError
from longwin.methods.sharedllm.tree import chunk_context, keep_positions, plan_trees


@st.composite
def tree_shapes(draw):
    height = draw(st.integers(1, 5))
    p = draw(st.integers(1, 8))
    leaf = draw(st.integers(p, 3 * p))  # tokens per leaf at exact halving
    noise = draw(st.none() | st.lists(st.floats(-4, 4), min_size=height, max_size=height))
    sigma = draw(st.sampled_from([0.0, 0.1, 0.2, 0.5]))
    trees = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    return height, p, leaf * 2**height, noise, sigma, trees, seed


@settings(max_examples=200, deadline=None)
@given(tree_shapes())
def test_preserved_nodes_tile_every_chunk_and_keep_h_plus_1_times_p(shape):
    height, p, chunk, noise, sigma, trees, seed = shape
    gen = torch.Generator().manual_seed(seed)

    def random_policy(left, right):
        return torch.rand(left.shape[0], generator=gen) < 0.5

    spans = plan_trees(trees, chunk, height, p, random_policy, noise, sigma)
    assert spans.shape == (trees, height + 1, 2)
    for tree in spans.tolist():
        starts = [s for s, _ in tree]
        ends = [s + n for s, n in tree]
        assert starts[0] == 0 and ends[-1] == chunk
        assert starts[1:] == ends[:-1]  # contiguous, no overlap, no gap
        assert all(n >= p for _, n in tree)
        kept = sum(len(set(keep_positions(n, p).tolist())) for _, n in tree)
        assert kept == (height + 1) * p
        assert all(int(keep_positions(n, p).max()) < n for _, n in tree)


def test_always_right_gives_the_paper_worked_example():
    spans = plan_trees(2, 1024, 3, 32)  # LM policy, no noise: 512, 256, 128, 128 with the leaves last
    assert spans[0].tolist() == [[0, 512], [512, 256], [768, 128], [896, 128]]
    assert torch.equal(spans[0], spans[1])
    assert keep_positions(512, 32).tolist()[:3] == [0, 16, 32]


def test_policy_steers_the_leaves_and_noise_moves_split_points():
    go_left = plan_trees(1, 64, 2, 4, policy=lambda left, right: torch.zeros(left.shape[0], dtype=torch.bool))
    assert go_left[0].tolist() == [[0, 16], [16, 16], [32, 32]]
    noisy = plan_trees(1, 64, 2, 4, noise=[1.0, 0.0], sigma=0.2)
    assert noisy[0].tolist() == [[0, 19], [19, 22], [41, 23]]  # b = floor(32 - 0.2*64) = 19, then halves of 45


def test_noise_is_clamped_so_later_levels_still_fit():
    spans = plan_trees(1, 64, 3, 4, noise=[-50.0, 50.0, 50.0], sigma=0.5)
    assert all(n >= 4 for _, n in spans[0].tolist())


@pytest.mark.parametrize(
    "chunk, height, p, message",
    [
        (100, 3, 4, "divisible by 2\\*\\*tree_height"),
        (64, 3, 16, "too small"),
        (64, 0, 4, "tree_height"),
        (64, 2, 0, "kv_per_node"),
    ],
)
def test_bad_tree_shapes_are_user_errors(chunk, height, p, message):
    with pytest.raises(LongwinError, match=message):
        plan_trees(1, chunk, height, p)


def test_chunk_context_left_truncates_and_drops_padding():
    ids = torch.arange(1, 11).repeat(2, 1)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # sample 1 is left-padded: 5 real tokens
    chunks, sample, chunk_id, counts = chunk_context(ids, mask, 4)
    assert counts.tolist() == [2, 1]
    assert chunks.tolist() == [[3, 4, 5, 6], [7, 8, 9, 10], [7, 8, 9, 10]]
    assert sample.tolist() == [0, 0, 1] and chunk_id.tolist() == [0, 1, 0]
    empty, _, _, none = chunk_context(ids[:, :3], None, 4)
    assert empty.shape == (0, 4) and none.tolist() == [0, 0]
