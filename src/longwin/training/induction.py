"""Auxiliary losses that grow an induction circuit in a small model during pretraining.

A model of the toy's size does not find induction heads (copy what followed the previous occurrence
of the current token) by itself within a CPU budget: the two heads of the circuit only pay off
together, so plain next-token loss sits on a plateau (docs/toy-model.md). Three auxiliary signals
break the plateau, all removed after training so the saved model stays a stock Llama:

- one head of layer `prev_layer` is told to attend to the previous token;
- a linear probe (discarded afterwards) must read the previous token from the residual stream after
  that layer, so the head's output carries the token's identity, not just its attention pattern;
- one head of layer `induction_layer` is told to attend to the positions just after earlier
  occurrences of the current token (to BOS when there is none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class InductionHeads:
    """Which heads are supervised: (layer, head) of the previous-token and the induction head."""

    prev_layer: int = 0
    prev_head: int = 0
    induction_layer: int = 1
    induction_head: int = 0


def previous_token_targets(seq_len: int) -> torch.Tensor:
    """(T, T) attention target: row i puts all mass on i - 1 (row 0 on itself)."""
    target = torch.zeros(seq_len, seq_len)
    idx = torch.arange(1, seq_len)
    target[idx, idx - 1] = 1.0
    target[0, 0] = 1.0
    return target


def induction_targets(input_ids: torch.Tensor) -> torch.Tensor:
    """(B, T, T) attention target of an induction head.

    Row i spreads its mass evenly over the positions j <= i whose previous token equals token i
    (where a copy of what followed it would continue the sequence); rows without such a j attend to
    position 0, the BOS sink.
    """
    b, t = input_ids.shape
    idx = torch.arange(t, device=input_ids.device)
    match = torch.zeros(b, t, t, dtype=torch.bool, device=input_ids.device)
    earlier = idx[None, :-1] < idx[:, None]  # key j = k + 1 with k < i
    match[:, :, 1:] = (input_ids[:, None, :-1] == input_ids[:, :, None]) & earlier[None]
    target = match.float()
    target[..., 0] += (target.sum(-1) == 0).float()
    return target / target.sum(-1, keepdim=True)


def attention_loss(attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a head's attention rows against target rows, averaged over rows."""
    return -(target * attention.clamp_min(1e-6).log()).sum(-1).mean()


class InductionSupervision(torch.nn.Module):
    """The auxiliary loss; its only parameters are the previous-token probe's."""

    def __init__(self, hidden_size: int, heads: InductionHeads = InductionHeads()) -> None:
        super().__init__()
        self.heads = heads
        self.probe = torch.nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, model, input_ids: torch.Tensor, outputs) -> torch.Tensor:
        """`outputs` must come from `model(..., output_attentions=True, output_hidden_states=True)`."""
        h = self.heads
        prev_attn = outputs.attentions[h.prev_layer][:, h.prev_head]
        ind_attn = outputs.attentions[h.induction_layer][:, h.induction_head]
        loss = attention_loss(prev_attn, previous_token_targets(input_ids.shape[1]).to(prev_attn))
        loss = loss + attention_loss(ind_attn, induction_targets(input_ids))
        residual = outputs.hidden_states[h.prev_layer + 1][:, 1:]  # after the previous-token layer
        logits = model.lm_head(model.model.norm(self.probe(residual)))
        return loss + F.cross_entropy(logits.flatten(0, 1).float(), input_ids[:, :-1].flatten())

    def save(self, folder: str | Path) -> None:
        torch.save(self.state_dict(), Path(folder) / "induction_probe.pt")

    def load(self, folder: str | Path) -> bool:
        """Restore the probe saved in a checkpoint folder; False when the folder has none."""
        path = Path(folder) / "induction_probe.pt"
        if not path.exists():
            return False
        self.load_state_dict(torch.load(path, weights_only=True))
        return True


def random_repeats(tokenizer, *, rows: int, span: int, seed: int) -> torch.Tensor:
    """(rows, 1 + 2 span) ids: BOS, a span of random regular tokens, the same span again."""
    g = torch.Generator().manual_seed(seed)
    first = max(tokenizer.all_special_ids) + 1
    spans = torch.randint(first, len(tokenizer), (rows, span), generator=g)
    bos = torch.full((rows, 1), tokenizer.bos_token_id)
    return torch.cat([bos, spans, spans], dim=1)


def copy_accuracy(model, input_ids: torch.Tensor, span: int) -> float:
    """Top-1 accuracy on the second half of rows `BOS + s + s` (len(s) = span): 1.0 = perfect copy."""
    with torch.no_grad():
        logits = model(input_ids).logits[:, :-1]
    hits = logits.argmax(-1) == input_ids[:, 1:]
    return hits[:, span + 1:].float().mean().item()


def induction_trainer(supervision: InductionSupervision, weight: float):
    """A `transformers.Trainer` subclass that adds `weight` x the induction loss to the LM loss.

    The probe joins the optimizer as an extra parameter group and is saved next to every checkpoint
    (`induction_probe.pt`), so a resumed run continues it instead of starting a fresh probe.
    """
    from transformers import Trainer, TrainerCallback

    class SaveProbe(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            supervision.save(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    class InductionTrainer(Trainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.add_callback(SaveProbe())

        def create_optimizer(self, model=None):
            optimizer = super().create_optimizer(model)
            optimizer.add_param_group({"params": list(supervision.parameters()), "weight_decay": 0.0})
            return optimizer

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = {**inputs, "output_attentions": True, "output_hidden_states": True}
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            loss = loss + weight * supervision(model, inputs["input_ids"], outputs)
            return (loss, outputs) if return_outputs else loss

    return InductionTrainer
