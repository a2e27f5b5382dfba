"""The context tree of one chunk as index arithmetic: which token spans are preserved (paper §3.2-3.4).

Planning is separated from encoding so the tiling and KV-count invariants can be tested without a
model. A tree of height h splits its current node h times; at each of the first h-1 splits the
policy picks the child to descend into and the other child is preserved; the last split preserves
both leaves. So h+1 nodes are preserved and they tile the chunk exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from longwin.errors import LongwinError

# (left_spans, right_spans), each [n_trees, 2] of (start, length) -> go_right [n_trees] bool
Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_tree_shape(chunk_size: int, tree_height: int, kv_per_node: int) -> None:
    """Reject shapes the tree cannot take: every split must halve evenly and every node must hold p tokens."""
    if tree_height < 1:
        raise LongwinError(f"tree_height must be >= 1, got {tree_height}")
    if kv_per_node < 1:
        raise LongwinError(f"kv_per_node must be >= 1, got {kv_per_node}")
    if chunk_size % 2**tree_height:
        raise LongwinError(f"chunk_size {chunk_size} must be divisible by 2**tree_height = {2**tree_height}")
    if chunk_size // 2**tree_height < kv_per_node:
        raise LongwinError(
            f"chunk_size {chunk_size} is too small: leaves of {chunk_size // 2**tree_height} tokens "
            f"(chunk_size / 2**tree_height) cannot keep kv_per_node = {kv_per_node} KVs"
        )


def min_side(level: int, tree_height: int, kv_per_node: int) -> int:
    """Shortest child allowed at split `level` (1-based), so every later split still fits p KVs per node.

    A node split at level k needs p·2^(h-k+1) tokens when every later split may land anywhere in its
    allowed range; hence each child of a level-k split needs p·2^(h-k).
    """
    return kv_per_node * 2 ** (tree_height - level)


def split_points(lengths: torch.Tensor, z: float, sigma: float, low: int) -> torch.Tensor:
    """b = floor(l/2 - ε) with ε = z·σ·l (one z per level shared by all trees), clamped to [low, l-low]."""
    b = torch.floor(lengths.double() / 2 - z * sigma * lengths.double()).long()
    return torch.minimum(torch.clamp(b, min=low), lengths - low)


def plan_trees(
    n_trees: int,
    chunk_size: int,
    tree_height: int,
    kv_per_node: int,
    policy: Policy | None = None,
    noise: list[float] | None = None,
    sigma: float = 0.0,
) -> torch.Tensor:
    """Preserved spans of `n_trees` trees over chunks of `chunk_size` tokens.

    `policy` picks the child to descend into (None = always right, the paper's LM policy);
    `noise` holds one standard-normal draw per split level (None = exact halves, as at test time).
    Returns [n_trees, tree_height + 1, 2] (start, length), sorted by start (document order).
    """
    check_tree_shape(chunk_size, tree_height, kv_per_node)
    if noise is not None and len(noise) != tree_height:
        raise ValueError(f"need one noise draw per level ({tree_height}), got {len(noise)}")
    start = torch.zeros(n_trees, dtype=torch.long)
    length = torch.full((n_trees,), chunk_size, dtype=torch.long)
    preserved: list[torch.Tensor] = []
    for level in range(1, tree_height + 1):
        z = noise[level - 1] if noise is not None else 0.0
        b = split_points(length, z, sigma, min_side(level, tree_height, kv_per_node))
        left = torch.stack([start, b], dim=1)
        right = torch.stack([start + b, length - b], dim=1)
        if level == tree_height:
            preserved += [left, right]
            break
        go_right = torch.ones(n_trees, dtype=torch.bool) if policy is None else policy(left, right).cpu()
        preserved.append(torch.where(go_right[:, None], left, right))
        start, length = torch.where(go_right[:, None], right, left).unbind(1)
    spans = torch.stack(preserved, dim=1)
    order = spans[..., 0].argsort(dim=1)
    return torch.gather(spans, 1, order[..., None].expand_as(spans))


def keep_positions(length: int, kv_per_node: int) -> torch.Tensor:
    """Uniformly spaced positions 0, s, 2s, ... (s = l/p when p divides l) kept from a node of `length` tokens."""
    return torch.arange(kv_per_node) * length // kv_per_node


def chunk_context(
    context_ids: torch.Tensor, context_mask: torch.Tensor | None, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each sample's real context tokens into whole chunks, one tree per chunk.

    A remainder is left-truncated: the oldest `len % chunk_size` tokens are dropped, so the chunks
    end exactly where the local window begins. Padding (mask 0, either side) is removed first, so
    samples may have different chunk counts. Returns chunks [trees, chunk_size], the sample of each
    tree [trees], its chunk id in document order [trees], and chunks per sample [batch].
    """
    batch = context_ids.shape[0]
    rows, samples, ids = [], [], []
    counts = torch.zeros(batch, dtype=torch.long)
    for b in range(batch):
        tokens = context_ids[b] if context_mask is None else context_ids[b][context_mask[b].bool()]
        n = tokens.shape[0] // chunk_size
        counts[b] = n
        if n:
            rows.append(tokens[tokens.shape[0] - n * chunk_size :].view(n, chunk_size))
            samples.append(torch.full((n,), b, dtype=torch.long))
            ids.append(torch.arange(n))
    if not rows:
        empty = torch.zeros(0, dtype=torch.long)
        return context_ids.new_zeros(0, chunk_size), empty, empty, counts
    return torch.cat(rows), torch.cat(samples), torch.cat(ids), counts
