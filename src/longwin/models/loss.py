"""The causal-LM loss without the full logits: the output projection and cross-entropy, chunk by chunk.

A causal LM's loss normally materialises logits for every token over the whole vocabulary (SmolLM2 at
2K tokens: 2,048 x 49,152 fp32 = 400 MB, and as much again for their gradient), then walks that tensor
several times in memory-bound softmax passes. `linear_cross_entropy` instead projects a few hundred
rows at a time, turns them into the loss and, in the same pass, into the gradients of the hidden states
and of the projection weight, so nothing vocabulary-sized outlives one chunk. The arithmetic is the
model's own (same matmuls, same fp32 softmax); only the order of the sums differs. Weights that do not
require gradients (a frozen embedding under LoRA) get none computed.

Some families change the head's output before the softmax (Granite divides it by `logits_scaling`,
Cohere and FalconH1 multiply it, Gemma 2/3 soft-cap it); `logit_transform` says how, from transformers'
own forward code, and refuses families whose scaling it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from longwin.errors import LongwinError

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 23  # logits held at once: 8M floats (32 MB in fp32)

# model_type -> (config attribute, whether the forward divides by it rather than multiplies), as read in
# transformers' modeling files (`logits = self.lm_head(hidden_states) / self.config.logits_scaling`, ...)
_LOGIT_SCALES: dict[str, tuple[str, bool]] = {
    "granite": ("logits_scaling", True),
    "granitemoe": ("logits_scaling", True),
    "granitemoeshared": ("logits_scaling", True),
    "granitemoehybrid": ("logits_scaling", True),
    "cohere": ("logit_scale", False),
    "cohere2": ("logit_scale", False),
    "falcon_h1": ("lm_head_multiplier", False),
}
# attributes by which other families scale their logits (MiniCPM3, MuseSpark, ...): refused where not read above
_SCALE_ATTRIBUTES = ("logits_scaling", "logit_scale", "lm_head_multiplier", "output_multiplier")


@dataclass(frozen=True)
class LogitTransform:
    """What a family's forward does to the head output z: logits = softcap * tanh(scale * z / softcap), or
    scale * z without a soft cap."""

    scale: float = 1.0
    softcap: float | None = None

    def apply(self, raw: torch.Tensor) -> torch.Tensor:
        """The logits of head outputs `raw` (a new tensor)."""
        logits = raw * self.scale
        return torch.tanh(logits / self.softcap) * self.softcap if self.softcap else logits

    def slope(self, logits: torch.Tensor) -> torch.Tensor | float:
        """d logits / d raw at `logits` (the chain rule's factor for the head's gradients)."""
        return self.scale * (1 - (logits / self.softcap) ** 2) if self.softcap else self.scale


def logit_transform(config: Any) -> LogitTransform:
    """How `config`'s family turns head outputs into logits; LongwinError for a scaling longwin has not read."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    model_type = getattr(text, "model_type", None) or type(text).__name__
    scale = 1.0
    if model_type in _LOGIT_SCALES:
        name, divides = _LOGIT_SCALES[model_type]
        value = float(getattr(text, name))
        scale = 1 / value if divides else value
    else:
        unknown = [name for name in _SCALE_ATTRIBUTES if getattr(text, name, None) not in (None, 1, 1.0)]
        if unknown:
            raise LongwinError(
                f"{model_type} models scale their logits ({', '.join(unknown)}) in a way longwin does not know"
            )
    return LogitTransform(scale, getattr(text, "final_logit_softcapping", None) or None)


class _LinearCrossEntropy(torch.autograd.Function):
    """Sum of token cross-entropies of `transform(hidden @ weight.T)`; gradients computed in the forward pass.

    The weight gradient is a sum over chunks of probs.T @ h. Each chunk's product is a GEMM in the inputs'
    dtype (fp32 accumulation inside it, the way autograd computes a bf16 weight gradient; an fp32 GEMM of
    upcast bf16 inputs would run without tensor cores unless the user enabled TF32, and toggling that global
    flag here would clash with the caller's own TF32 settings), rounded once to that dtype, and the chunks are
    summed in an fp32 buffer, so the error stays one rounding per chunk however many chunks there are.
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        rows: int,
        transform: LogitTransform,
    ) -> torch.Tensor:
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
            logits = transform.apply((h @ weight.T).to(wide))
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, safe[:, None]).squeeze(1)
            total += ((lse - picked) * keep).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            slope = transform.slope(logits)  # before the softmax overwrites the logits
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            probs[torch.arange(len(t), device=hidden.device), safe] -= 1.0
            probs.mul_(keep[:, None] * slope)
            probs = probs.to(hidden.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + rows] = probs @ weight
            if grad_weight is not None:
                if probs.dtype == wide:
                    grad_weight.addmm_(probs.T, h)
                else:
                    grad_weight.add_(probs.T @ h)
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
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    rows: int | None = None,
    transform: LogitTransform = LogitTransform(),
) -> torch.Tensor:
    """Summed cross-entropy of `transform(hidden @ weight.T)` against `targets` (-100 = ignore), `rows` rows at
    a time (default: CHUNK_ELEMENTS logits at once)."""
    rows = rows or max(1, CHUNK_ELEMENTS // weight.shape[0])
    flat = hidden.reshape(-1, hidden.shape[-1])
    return _LinearCrossEntropy.apply(flat, weight, targets.reshape(-1), rows, transform)


def chunked_loss_problem(model: Any) -> str | None:
    """Why `model`'s loss cannot be computed chunk by chunk (a biased head, an unknown logit scaling), or None."""
    head = model.get_output_embeddings()
    if head is None or not isinstance(head, torch.nn.Linear):
        return "no linear output projection"
    if head.bias is not None:
        return "the output projection has a bias"
    try:
        logit_transform(model.config)
    except LongwinError as error:
        return str(error)
    return None


def causal_lm_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
    """The loss `model(**inputs)` would return (next-token, -100 ignored; the sum over `num_items_in_batch`
    tokens when given, else the mean), computed without the full logits."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    hidden = model.get_decoder()(**inputs, use_cache=False)[0]
    targets = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # predict token i+1 at i
    head = model.get_output_embeddings().weight
    total = linear_cross_entropy(hidden, head, targets, transform=logit_transform(model.config))
    if num_items_in_batch is None:
        count = (targets != IGNORE_INDEX).sum()
    else:
        count = torch.as_tensor(num_items_in_batch, device=total.device)
    return total / count.to(total.dtype)
