"""Auxiliary losses that grow an induction circuit in a small model during pretraining.

A model of the toy's size does not find induction heads (copy what followed the previous occurrence
of the current token) by itself within a CPU budget: the two heads of the circuit only pay off
together, so plain next-token loss sits on a plateau (docs/toy-model.md). Three auxiliary signals
break the plateau, all removed after training so the saved model stays a stock Llama:

- heads 0..m-1 of layer `prev_layer` are told to attend to the token 1..m places back;
- linear probes (discarded afterwards) must read those tokens from the residual stream after that
  layer, so the heads' outputs carry the tokens' identity, not just their attention pattern;
- one head of layer `induction_layer` is told to attend to the positions just after earlier
  occurrences of the last m tokens (the longest match wins; BOS when there is none).

With m = 1 the induction head matches one token, which is enough for random tokens but not for
natural text, where a common token (" is") follows many contexts; m = 2 lets the head tell
"Francisco is" from "it is" and copy the right continuation (docs/toy-model.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class InductionHeads:
    """Which heads are supervised.

    Heads 0..match_len-1 of `prev_layer` look 1..match_len tokens back; head `induction_head` of
    `induction_layer` matches the last `match_len` tokens against earlier text.
    """

    prev_layer: int = 0
    induction_layer: int = 1
    induction_head: int = 0
    match_len: int = 1


def previous_token_targets(seq_len: int, offset: int = 1) -> torch.Tensor:
    """(T, T) attention target: row i puts all mass on i - offset (rows before `offset` on BOS)."""
    target = torch.zeros(seq_len, seq_len)
    idx = torch.arange(offset, seq_len)
    target[idx, idx - offset] = 1.0
    target[:offset, 0] = 1.0
    return target


def induction_targets(input_ids: torch.Tensor, match_len: int = 1) -> torch.Tensor:
    """(B, T, T) attention target of an induction head.

    Key j = k + 1 (just after an earlier k < i) scores the length of the common suffix of the
    tokens ending at k and at i, up to `match_len`. Row i spreads its mass evenly over the keys with
    the highest score (where copying what followed would continue the sequence best); rows with no
    match at all attend to position 0, the BOS sink.
    """
    b, t = input_ids.shape
    idx = torch.arange(t, device=input_ids.device)
    same = input_ids[:, :, None] == input_ids[:, None, :]  # same[i, k]: token i == token k
    run, score = same, same.int()
    for back in range(1, match_len):  # extend the match one token further back while it holds
        shifted = torch.zeros_like(same)
        shifted[:, back:, back:] = same[:, :-back, :-back]
        run = run & shifted
        score = score + run.int()
    score = score * (idx[None, :] < idx[:, None])[None]  # only earlier k
    keys = torch.zeros(b, t, t, dtype=score.dtype, device=input_ids.device)
    keys[:, :, 1:] = score[:, :, :-1]
    best = keys.amax(-1, keepdim=True)
    target = ((keys == best) & (best > 0)).float()
    target[..., 0] += (best[..., 0] == 0).float()
    return target / target.sum(-1, keepdim=True)


def attention_loss(attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a head's attention rows against target rows, averaged over rows."""
    return -(target * attention.clamp_min(1e-6).log()).sum(-1).mean()


class InductionSupervision(torch.nn.Module):
    """The auxiliary loss; its only parameters are the probes (one per look-back offset)."""

    def __init__(self, hidden_size: int, heads: InductionHeads = InductionHeads()) -> None:
        super().__init__()
        self.heads = heads
        self.probes = torch.nn.ModuleList(
            torch.nn.Linear(hidden_size, hidden_size, bias=False) for _ in range(heads.match_len)
        )

    def forward(self, model, input_ids: torch.Tensor, outputs) -> torch.Tensor:
        """`outputs` must come from `model(..., output_attentions=True, output_hidden_states=True)`."""
        h, seq_len = self.heads, input_ids.shape[1]
        ind_attn = outputs.attentions[h.induction_layer][:, h.induction_head]
        loss = attention_loss(ind_attn, induction_targets(input_ids, h.match_len))
        residual = outputs.hidden_states[h.prev_layer + 1]  # after the look-back layer
        for offset, probe in enumerate(self.probes, start=1):
            attn = outputs.attentions[h.prev_layer][:, offset - 1]
            loss = loss + attention_loss(attn, previous_token_targets(seq_len, offset).to(attn))
            logits = model.lm_head(model.model.norm(probe(residual[:, offset:])))
            loss = loss + F.cross_entropy(logits.flatten(0, 1).float(), input_ids[:, :-offset].flatten())
        return loss

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
    from longwin.data.tokenizer import first_regular_id

    g = torch.Generator().manual_seed(seed)
    spans = torch.randint(first_regular_id(tokenizer), len(tokenizer), (rows, span), generator=g)
    bos = torch.full((rows, 1), tokenizer.bos_token_id)
    return torch.cat([bos, spans, spans], dim=1)


def copy_accuracy(model, input_ids: torch.Tensor, span: int) -> float:
    """Top-1 accuracy on the second half of rows `BOS + s + s` (len(s) = span): 1.0 = perfect copy."""
    with torch.no_grad():
        logits = model(input_ids).logits[:, :-1]
    hits = logits.argmax(-1) == input_ids[:, 1:]
    return hits[:, span + 1 :].float().mean().item()


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

        def create_optimizer(self, *args, **kwargs):  # 5.x passes the model, 4.x nothing
            optimizer = super().create_optimizer(*args, **kwargs)
            optimizer.add_param_group({"params": list(supervision.parameters()), "weight_decay": 0.0})
            return optimizer

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = {**inputs, "output_attentions": True, "output_hidden_states": True}
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            loss = loss + weight * supervision(model, inputs["input_ids"], outputs)
            return (loss, outputs) if return_outputs else loss

    return InductionTrainer
