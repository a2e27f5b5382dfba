"""A Trainer whose causal-LM loss never holds the full logits (`longwin.models.loss`).

Used for plain causal-LM training in one process. Multi-process runs (DDP, DeepSpeed, FSDP) keep the
model's own loss: their wrappers expect the model's forward to be called, and ZeRO-3/FSDP shard the
output projection this loss reads.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from longwin.models.loss import causal_lm_loss, chunked_loss_problem


class ChunkedLossTrainer(Trainer):
    """`Trainer` with the same loss, computed chunk by chunk over the sequence."""

    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if return_outputs or "labels" not in inputs or self.label_smoother is not None or self.compute_loss_func:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # the model normalises by num_items_in_batch only when it accepts loss kwargs; do exactly what it would
        given = num_items_in_batch if self.model_accepts_loss_kwargs else None
        # the mixed-precision autocast wraps only the top model's forward, which this loss bypasses
        with self.accelerator.autocast():
            return causal_lm_loss(self.accelerator.unwrap_model(model), inputs, given)


def chunked_loss_refusal(model: Any, targs: Any) -> str | None:
    """Why the run keeps the model's own loss (several processes, sharded weights, an unusual head), or None."""
    if targs.world_size > 1 or targs.deepspeed or targs.fsdp:
        return "several processes or sharded weights"
    return chunked_loss_problem(model)
