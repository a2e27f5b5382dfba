"""`EvalModel` for SharedLLM: the long part of a prompt goes into the context trees, the question stays local.

Split (`split_point`): the context is whole chunks of the model's chunk size; the local window is
the rest, at most `local_length` tokens (by default the window the model was trained with, saved in its
config as `local_length`; the base model's native window for a model that did not record one) but always
everything after `Prompt.context_end` (the question). No token is dropped,
and the upper model's self-attention stays inside its pretraining window. A prompt without a
context mark (context_end 0) keeps its last local-window tokens local.

Perplexity (`nll`): scored tokens are always in the local window, everything before it in the
trees. A scored span is cut into pieces of W/2 tokens (W = local window), each scored with its
own local window ending at the piece's end, so every scored token has at least about W/2 local
tokens before it (W/2 minus up to one chunk of rounding) and all older text through the trees,
as the `sliding` stride gives an ordinary model. So the `sliding`, `chunks` and `last-k`
conventions all apply unchanged (`chunks` costs one tree per piece). The tree's query
(query-aware models) is the token before each piece, so no scored token chooses its own context.

Options (`longwin eval --adapter-options`): `local_length=N` sets W (`local_window=N`, its old spelling, still
works); `trees=false` drops everything before
the local window, so the same trained model reads its local window only (the "without its trees"
baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from longwin.data.batching import left_pad
from longwin.eval.model import CausalLMAdapter, Prompt, piecewise_nll


def split_point(length: int, context_end: int, local_length: int, chunk: int, min_local: int = 1) -> int:
    """Tokens of a `length`-token prompt that go to the trees (a multiple of `chunk`).

    The fewest whole chunks that leave at most `local_length` tokens local, but never past
    `context_end` (when set) and always leaving `min_local` tokens local.
    """
    limit = context_end if 0 < context_end < length else length
    need = max(length - local_length, 0)
    split = -(-need // chunk) * chunk
    return max(0, min(split, limit // chunk * chunk, (length - min_local) // chunk * chunk))


class SharedLLMAdapter(CausalLMAdapter):
    """Greedy generation and NLL for a `SharedLLMForCausalLM`; any context length (window = None)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str | None = None,
        local_length: int | None = None,
        trees: bool = True,
    ) -> None:
        from longwin.rope import native_window

        trained = getattr(model.config, "local_length", 0)  # configs saved before it was recorded lack it
        self.local_length = local_length or trained or native_window(model.config.get_text_config())
        self.trees = trees
        super().__init__(model, tokenizer, name=name)
        self.window = None  # the trees take any context length; the local window never exceeds the native one
        self.position_limit = None
        self.chunk = model.config.chunk_size

    def _settings(self) -> dict[str, Any]:
        # the old key `local_window` and `trees` only when off: results cached before keep their fingerprint
        return {"local_window": self.local_length, **({} if self.trees else {"trees": False})}

    def split(self, prompt: Prompt) -> int:
        return split_point(len(prompt.ids), prompt.context_end, self.local_length, self.chunk)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[list[int]]:
        """Greedy continuations; contexts and local windows left-padded, the trees built once at prefill."""
        from transformers import GenerationConfig

        splits = [self.split(p) for p in prompts]
        context, context_mask = left_pad([p.ids[:s] for p, s in zip(prompts, splits)], self.pad_id)
        local, mask = left_pad([p.ids[s:] for p, s in zip(prompts, splits)], self.pad_id)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids) or None,
        )
        device = self.device
        out = self.model.generate(
            input_ids=local.to(device),
            attention_mask=mask.to(device),
            context_input_ids=context.to(device) if self.trees else None,
            context_attention_mask=context_mask.to(device) if self.trees else None,
            generation_config=config,
        )
        return [self._until_eos(row) for row in out[:, local.shape[1] :].tolist()]

    @torch.inference_mode()
    def token_nll(self, ids: Sequence[int], score_from: int) -> torch.Tensor:
        def piece(end: int) -> tuple[int, torch.Tensor]:
            split = split_point(end, end, self.local_length, self.chunk, min_local=2)
            first = max(score_from, end - max(1, self.local_length // 2), split + 1)
            return first, self._score(ids, split, first, end)

        return piecewise_nll(len(ids), score_from, piece)

    def _score(self, ids: Sequence[int], split: int, first: int, end: int) -> torch.Tensor:
        """Per-token NLL of ids[first:end], local window ids[split:end], trees over ids[:split]."""
        device = self.device
        local = torch.tensor([list(ids[split:end])], dtype=torch.long, device=device)
        context = torch.tensor([list(ids[:split])], dtype=torch.long, device=device) if split and self.trees else None
        out = self.model(
            input_ids=local,
            context_input_ids=context,
            use_cache=False,
            query_length=torch.tensor([first - split], device=device),
            logits_to_keep=end - first + 1,
        )
        logits = out.logits[0, :-1].float()
        return F.cross_entropy(logits, local[0, first - split :], reduction="none").float().cpu()
