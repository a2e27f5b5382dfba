"""Positional self-distillation: keep the base model's predictions while the position ids move.

Fine-tuning on natural text at a scheme's position ids (CREAM, PoSE) changes what a model does even inside
its own window: the toy loses its content copying within 200 steps (docs/toy-model.md), because nothing in
next-token loss on plain prose asks it to keep a skill that prose rarely uses. This loss ties the model being
trained, reading a window at the scheme's positions, to the unchanged base reading the same tokens at
positions 0..T-1, where it works: a KL divergence from the base's next-token distribution at every token.
The base keeps its own RoPE (no scaling), so the target is what the model did before it was extended, and
the student is asked to do the same at distances it never saw.

The teacher is a frozen second copy of the base: one more forward pass per step and the model's memory
again. Nothing of it is saved; the trained model stays a stock transformers model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from longwin.models.loss import IGNORE_INDEX


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over predicted tokens of KL(teacher || student) of the next-token distributions.

    Token i predicts token i + 1; a position counts where `labels[i + 1]` is not ignored (-100), as for the
    language-model loss, so padding and prompt tokens a recipe masks are left alone here too.
    """
    keep = labels[:, 1:] != IGNORE_INDEX
    student = F.log_softmax(student_logits[:, :-1][keep].float(), dim=-1)
    teacher = F.log_softmax(teacher_logits[:, :-1][keep].float(), dim=-1)
    if student.shape[0] == 0:
        return student_logits.sum() * 0.0
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


def distill_trainer(teacher: Any, weight: float) -> type:
    """A `transformers.Trainer` subclass whose loss is the LM loss plus `weight` x `distill_kl` against `teacher`
    run on the same tokens at its default positions (no `position_ids`)."""
    from transformers import Trainer

    teacher.eval()
    teacher.requires_grad_(False)

    class DistillTrainer(Trainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            teacher.to(self.args.device)  # where the Trainer puts the model and its batches

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            plain = {k: v for k, v in inputs.items() if k not in ("position_ids", "labels", "native_rope")}
            with torch.no_grad(), self.accelerator.autocast():  # the teacher is not wrapped by the Trainer's autocast
                target = teacher(**plain, use_cache=False).logits
            kl = distill_kl(outputs.logits, target, inputs["labels"])
            if num_items_in_batch is not None and self.model_accepts_loss_kwargs:
                # the LM loss is then already a share of the whole step's tokens and the Trainer does not divide
                # by the accumulation steps; the KL, a mean over this micro-batch, must be divided here
                kl = kl / getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
            loss = loss + weight * kl
            return (loss, outputs) if return_outputs else loss

    return DistillTrainer
