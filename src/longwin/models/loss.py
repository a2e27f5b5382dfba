"""The causal-LM loss without the full logits: the output projection and cross-entropy, chunk by chunk.

A causal LM's loss normally materialises logits for every token over the whole vocabulary (SmolLM2 at
2K tokens: 2,048 x 49,152 fp32 = 400 MB, and as much again for their gradient), then walks that tensor
several times in memory-bound softmax passes. `linear_cross_entropy` instead projects a few hundred
rows at a time, turns them into the loss and, in the same pass, into the gradients of the hidden states
and of the projection weight, so nothing vocabulary-sized outlives one chunk. The arithmetic is the
model's own (same matmuls, same fp32 softmax); only the order of the sums differs. Weights that do not
require gradients (a frozen embedding under LoRA) get none computed.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 23  # logits held at once: 8M floats (32 MB in fp32)


class _LinearCrossEntropy(torch.autograd.Function):
    """Sum of token cross-entropies of `hidden @ weight.T`; gradients computed in the forward pass."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int) -> torch.Tensor:
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        wide = torch.promote_types(hidden.dtype, torch.float32)  # softmax and sums at least in fp32
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=wide) if want_weight else None
        total = hidden.new_zeros((), dtype=wide)
        for start in range(0, hidden.shape[0], rows):
            h = hidden[start : start + rows]
            t = targets[start : start + rows]
            keep = t != IGNORE_INDEX
            safe = t.clamp(min=0)
            logits = (h @ weight.T).to(wide)
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, safe[:, None]).squeeze(1)
            total += ((lse - picked) * keep).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            probs[torch.arange(len(t)), safe] -= 1.0
            probs.mul_(keep[:, None])
            probs = probs.to(hidden.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + rows] = probs @ weight
            if grad_weight is not None:
                grad_weight.addmm_(probs.T.to(wide), h.to(wide))
        ctx.save_for_backward(
            grad_hidden if grad_hidden is not None else hidden.new_empty(0),
            grad_weight.to(weight.dtype) if grad_weight is not None else weight.new_empty(0),
        )
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            grad_hidden * grad_output if ctx.needs_input_grad[0] else None,
            grad_weight * grad_output if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int | None = None
) -> torch.Tensor:
    """Summed cross-entropy of `hidden @ weight.T` against `targets` (-100 = ignore), `rows` rows at a time
    (default: CHUNK_ELEMENTS logits at once)."""
    rows = rows or max(1, CHUNK_ELEMENTS // weight.shape[0])
    return _LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), weight, targets.reshape(-1), rows)


def chunked_loss_problem(model: Any) -> str | None:
    """Why `model`'s loss cannot be computed chunk by chunk (a biased or soft-capped head), or None."""
    head = model.get_output_embeddings()
    if head is None or not isinstance(head, torch.nn.Linear):
        return "no linear output projection"
    if head.bias is not None:
        return "the output projection has a bias"
    config = model.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return "the logits are soft-capped or scaled"
    return None


def causal_lm_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
    """The loss `model(**inputs)` would return (next-token, -100 ignored; the sum over `num_items_in_batch`
    tokens when given, else the mean), computed without the full logits."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    hidden = model.get_decoder()(**inputs, use_cache=False)[0]
    targets = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # predict token i+1 at i
    total = linear_cross_entropy(hidden, model.get_output_embeddings().weight, targets)
    if num_items_in_batch is None:
        count = (targets != IGNORE_INDEX).sum()
    else:
        count = torch.as_tensor(num_items_in_batch, device=total.device)
    return total / count.to(total.dtype)
