"""Context distillation (`--sharedllm-stage distill`): the base teaches SharedLLM what the far context changes.

Next-token loss on natural text barely asks the stacked model to read its trees: most tokens are predictable
from the local window. Inside its native window the base reads context and local window together with full
attention, so its next-token distributions say exactly what the context should change. The student (the
stacked model) sees the same context only through its trees, plus the local window, and is trained toward
the teacher by KL(teacher || student) on the local window's tokens, weighted toward the key tokens (LongPPL's
rule, `longwin.models.key_tokens`): those the teacher predicts far better with the context than without it.

Teacher outputs are computed once per example (the frozen base, full attention over context + window, and a
second pass over the window alone for the key tokens) and stored as top-k log-probabilities plus the log of
the remaining mass (`TeacherCache`), so the student can take several epochs without paying for the teacher
again. The KL is exact on that coarsened distribution (top k tokens + one "rest" bucket): zero when the
student agrees with the teacher, and a lower bound on the full KL.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from longwin.errors import LongwinError
from longwin.methods.sharedllm.collator import SharedLLMCollator
from longwin.models.key_tokens import KeyTokenRule, key_tokens

TARGETS = ("teacher_logprobs", "teacher_ids", "teacher_rest", "token_weight")  # batch keys the model never sees


@dataclass(frozen=True)
class DistillSettings:
    """What a teacher cache holds; a cache built with other settings is refused, not silently mixed."""

    teacher: str
    top_k: int = 32
    key_weight: float = 5.0  # loss weight of a key token (1 for the rest)
    alpha: float = KeyTokenRule.alpha
    beta: float = KeyTokenRule.beta


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def teacher_targets(teacher: Any, context: Sequence[int], window: Sequence[int], settings: DistillSettings) -> dict:
    """The teacher's targets for the predictions of window tokens 1..W-1 (what the student's local-window logits
    0..W-2 predict): top-k log-probs with the context, the rest's log mass, and each token's loss weight."""
    if len(window) < 2:
        raise LongwinError("a distillation example needs a local window of at least 2 tokens")
    device = _device(teacher)
    ids = torch.tensor([list(context) + list(window)], device=device)
    full = teacher(input_ids=ids, use_cache=False, logits_to_keep=len(window)).logits[0, :-1].float()
    short = teacher(input_ids=ids[:, len(context) :], use_cache=False).logits[0, :-1].float()
    nxt = ids[0, len(context) + 1 :]
    key = key_tokens(
        F.cross_entropy(full, nxt, reduction="none"),
        F.cross_entropy(short, nxt, reduction="none"),
        KeyTokenRule(settings.alpha, settings.beta),
    )
    logp = F.log_softmax(full, dim=-1)
    top = logp.topk(min(settings.top_k, logp.shape[-1]), dim=-1)
    rest = logp.scatter(-1, top.indices, float("-inf")).logsumexp(-1)
    return {
        "teacher_logprobs": top.values.cpu(),
        "teacher_ids": top.indices.to(torch.int32).cpu(),
        "teacher_rest": rest.cpu(),
        "token_weight": (1 + (settings.key_weight - 1) * key.float()).cpu(),
    }


def sparse_kl(
    student_logits: torch.Tensor, logprobs: torch.Tensor, ids: torch.Tensor, rest: torch.Tensor
) -> torch.Tensor:
    """Per-token KL(teacher || student) over the teacher's top k tokens plus one bucket for the rest.

    `student_logits` (..., V); `logprobs`, `ids` (..., k); `rest` (...): the teacher's log mass outside its top k
    (-inf when there is none)."""
    logq = F.log_softmax(student_logits.float(), dim=-1)
    index = ids.long()
    q_top = logq.gather(-1, index)
    q_rest = logq.scatter(-1, index, float("-inf")).logsumexp(-1)
    top = (logprobs.exp() * (logprobs - q_top)).sum(-1)
    p_rest = rest.exp()
    bucket = torch.where(p_rest > 0, p_rest * (rest - q_rest), torch.zeros_like(rest))
    return top + bucket


def distill_loss(student_logits: torch.Tensor, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Weighted mean KL over the batch's predicted tokens (padding has weight 0). `student_logits`: the local
    window's logits (B, W, V); the targets cover its first W-1 positions."""
    steps = targets["teacher_logprobs"].shape[1]
    kl = sparse_kl(
        student_logits[:, :steps], targets["teacher_logprobs"], targets["teacher_ids"], targets["teacher_rest"]
    )
    weight = targets["token_weight"].to(kl.dtype)
    return (kl * weight).sum() / weight.sum().clamp(min=1e-6)


class TeacherCache:
    """One file of targets per example (`<index>.pt`, with a digest of the example's tokens) and `settings.json`.
    Filled once; a rerun reuses every file whose example is unchanged."""

    def __init__(self, folder: str | Path, settings: DistillSettings) -> None:
        self.folder, self.settings = Path(folder), settings
        meta = self.folder / "settings.json"
        if meta.is_file() and json.loads(meta.read_text()) != asdict(settings):
            raise LongwinError(
                f"teacher cache {self.folder} was built with other settings ({meta.read_text().strip()}); "
                f"remove it or pass another --sharedllm-teacher-cache"
            )

    @staticmethod
    def digest(example: Mapping[str, Sequence[int]]) -> str:
        text = json.dumps([list(example["context_ids"]), list(example["input_ids"])])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, index: int) -> Path:
        return self.folder / f"{index}.pt"

    def load(self, index: int, example: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor] | None:
        """The stored targets of example `index`, or None when missing or made for other tokens."""
        if not self.path(index).is_file():
            return None
        stored = torch.load(self.path(index), weights_only=True)
        return stored["targets"] if stored.get("digest") == self.digest(example) else None

    def fill(self, teacher: Any, examples: Dataset, count: int, log: Any = None) -> float:
        """Compute and store the targets of examples 0..count-1 that are not stored yet (atomic writes); return
        the share of the stored predictions that are key tokens (weight above 1)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "settings.json").write_text(json.dumps(asdict(self.settings)) + "\n")
        keys = total = 0
        for index in range(count):
            example = examples[index]
            targets = self.load(index, example)
            if targets is None:
                targets = teacher_targets(teacher, example["context_ids"], example["input_ids"], self.settings)
                partial = self.path(index).with_suffix(".pt.partial")
                torch.save({"digest": self.digest(example), "targets": targets}, partial)
                os.replace(partial, self.path(index))
                if log is not None:
                    log(index + 1, count)
            keys += int((targets["token_weight"] > 1).sum())
            total += len(targets["token_weight"])
        return keys / max(1, total)


class ContextDistillDataset(Dataset):
    """`num_samples` items cycling over the first `examples` natural-text examples, each with its stored targets
    (so `num_samples` above `examples` is several epochs over the same teacher outputs)."""

    def __init__(self, examples: Dataset, cache: TeacherCache, count: int, num_samples: int) -> None:
        self.examples, self.cache, self.count, self.num_samples = examples, cache, count, num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)  # iteration ends here, though the examples cycle
        example = dict(self.examples[index % self.count])
        targets = self.cache.load(index % self.count, example)
        if targets is None:
            raise LongwinError(f"teacher cache {self.cache.folder} has no targets for example {index % self.count}")
        return {**example, **targets}


@dataclass
class ContextDistillCollator(SharedLLMCollator):
    """`SharedLLMCollator`'s batch plus the teacher targets, right-padded like the local windows (weight 0)."""

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = super().__call__([{k: v for k, v in e.items() if k not in TARGETS} for e in examples])
        for key in TARGETS:
            batch[key] = pad_sequence([torch.as_tensor(e[key]) for e in examples], batch_first=True)
        return batch


def context_distill_trainer(lm_weight: float) -> type:
    """A `transformers.Trainer` whose loss is `distill_loss` (+ `lm_weight` x the LM loss on the window)."""
    from transformers import Trainer

    class ContextDistillTrainer(Trainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False  # the loss is a per-micro-batch mean: the Trainer divides it

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            targets = {k: inputs.pop(k) for k in TARGETS}
            if not lm_weight:
                inputs.pop("labels", None)
            outputs = model(**inputs)
            loss = distill_loss(outputs.logits, targets)
            if lm_weight:
                loss = loss + lm_weight * outputs.loss
            return (loss, outputs) if return_outputs else loss

    return ContextDistillTrainer


@torch.no_grad()
def tree_kl(model: Any, examples: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per example, (KL with the trees, KL without them) of the same model against the stored teacher targets
    (`examples`: items of `ContextDistillDataset`), both as trained (`weighted`, key tokens weighted) and as a
    plain mean over tokens (`plain`), from one forward pass each way: the stop rule's measure of what reading
    the trees buys."""
    model.eval()
    device = _device(model)
    out: dict[str, list[tuple[float, float]]] = {"weighted": [], "plain": []}
    for example in examples:
        window = torch.tensor([list(example["input_ids"])], device=device)
        targets = {k: torch.as_tensor(example[k]).unsqueeze(0).to(device) for k in TARGETS}
        plain = {**targets, "token_weight": torch.ones_like(targets["token_weight"])}
        context = torch.tensor([list(example["context_ids"])], device=device)
        logits = [
            model(input_ids=window, use_cache=False, **extra).logits for extra in ({"context_input_ids": context}, {})
        ]
        out["weighted"].append((float(distill_loss(logits[0], targets)), float(distill_loss(logits[1], targets))))
        out["plain"].append((float(distill_loss(logits[0], plain)), float(distill_loss(logits[1], plain))))
    return out
