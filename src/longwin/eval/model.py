"""The model interface the harness talks to, and its Hugging Face causal-LM implementation.

Tasks never call transformers directly: they hand `Prompt`s to an `EvalModel`. A prompt carries
where its long context ends, so a model that takes the context separately (SharedLLM: context
chunks to the encoder, the question in the decoder's local window) can implement the same two
methods and plug in without touching any task.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from longwin.data.batching import left_pad
from longwin.errors import LongwinError
from longwin.models.loss import logit_transform

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# names of learned absolute position tables (GPT-2 `wpe`, OPT/BART `embed_positions`, BERT-likes)
_POSITION_TABLES = ("wpe", "embed_positions", "position_embeddings")


@dataclass(frozen=True)
class Prompt:
    """Token ids of one prompt; `ids[:context_end]` is the long context, the rest the question."""

    ids: list[int]
    context_end: int


@runtime_checkable
class EvalModel(Protocol):
    """What the harness needs from a model (greedy generation and token log-likelihoods)."""

    name: str
    tokenizer: Any
    window: int | None  # configured context window (flag prompts beyond it)
    position_limit: int | None  # hard limit: positions beyond it cannot be embedded at all
    identity: str  # what the model is (weights, config, adapter settings): keys the resume cache, not the name

    def memory_needed(self, tokens: int, cache: bool = True) -> int:
        """Bytes a forward pass over a `tokens`-token prompt needs beyond the weights (an estimate); `cache`:
        the pass keeps a KV cache for generation (perplexity keeps none)."""
        ...

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[list[int]]:
        """Greedy continuation ids for each prompt, stopped at EOS (EOS not included)."""
        ...

    def token_nll(self, ids: Sequence[int], score_from: int) -> torch.Tensor:
        """Negative log-likelihood of each of `ids[score_from:]` given its prefix (1-D float32, on the CPU)."""
        ...


class CausalLMAdapter:
    """`EvalModel` over any transformers causal LM: batched greedy decoding with a KV cache, and
    chunked cross-entropy that never holds full-vocabulary logits for a whole long sequence."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str | None = None, logits_chunk: int = 512) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = model.config
        self.name = name or getattr(config, "_name_or_path", "") or type(model).__name__
        self.window = _config_window(config)
        self.position_limit = self.window if _has_learned_positions(model) else None
        self.logits_chunk = logits_chunk
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self.identity = json_digest(
            {"adapter": type(self).__name__, "model": model_digest(model), "vocab": len(tokenizer), **self._settings()}
        )

    def _settings(self) -> dict[str, Any]:
        """Adapter settings that change what the harness measures (part of `identity`)."""
        return {}

    def memory_needed(self, tokens: int, cache: bool = True) -> int:
        eager = getattr(self.model.config, "_attn_implementation", None) == "eager"
        width = next(self.model.parameters()).element_size()
        return forward_bytes(self.model.config, tokens, width, eager, cache=cache)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[list[int]]:
        """Greedy continuations (EOS dropped) via transformers' `generate`, prompts left-padded.

        A fresh GenerationConfig keeps a checkpoint's sampling/penalty defaults out of the scores.
        """
        from transformers import GenerationConfig

        ids, mask = left_pad([p.ids for p in prompts], self.pad_id)  # every prompt's last token aligned
        width = ids.shape[1]
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids) or None,
        )
        out = self.model.generate(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), generation_config=config
        )
        return [self._until_eos(row) for row in out[:, width:].tolist()]

    def _until_eos(self, tokens: list[int]) -> list[int]:
        for i, tok in enumerate(tokens):
            if tok in self.eos_ids:
                return tokens[:i]
        return tokens

    @torch.inference_mode()
    def token_nll(self, ids: Sequence[int], score_from: int) -> torch.Tensor:
        if not 1 <= score_from < len(ids):
            raise ValueError(f"score_from must be in [1, {len(ids)}), got {score_from}")
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        transform = logit_transform(self.model.config)  # refuses a scaling longwin does not know, before the work
        hidden = self._decoder()(input_ids=x, use_cache=False)[0][0]
        head = self.model.get_output_embeddings()
        states, targets = hidden[score_from - 1 : -1], x[0, score_from:]
        losses = []
        for a in range(0, len(targets), self.logits_chunk):
            logits = transform.apply(head(states[a : a + self.logits_chunk]).float())
            losses.append(F.cross_entropy(logits, targets[a : a + self.logits_chunk], reduction="none"))
        return torch.cat(losses).float().cpu()

    def _decoder(self) -> Any:
        """The transformer stack without the LM head (`get_decoder()`, else `.model`/`.transformer`)."""
        getter = getattr(self.model, "get_decoder", None)
        decoder = getter() if callable(getter) else None
        if decoder is None or decoder is self.model:
            decoder = getattr(self.model, "model", None) or getattr(self.model, "transformer", None)
        if decoder is None:
            raise LongwinError(f"cannot find the decoder stack of {type(self.model).__name__} for chunked loss")
        return decoder


class TruncatingAdapter(CausalLMAdapter):
    """The truncation baseline: the model sees only the last `keep` tokens of every prompt.

    A sequence that starts with BOS keeps it in front of its last `keep` - 1 tokens, as a prompt
    re-tokenised after truncation would: models that park attention on BOS (the toy's induction
    head does) are otherwise scored on inputs they never saw. Perplexity follows the same rule:
    scored pieces of keep/2 tokens, each with at most `keep` tokens of context ending at the
    piece's end, so every scored token sees between keep/2 and `keep` tokens, as a sliding window
    with stride keep/2 gives.
    """

    def __init__(self, model: Any, tokenizer: Any, *, keep: int, name: str | None = None) -> None:
        if keep < 2:
            raise LongwinError(f"--truncate must keep at least 2 tokens, got {keep}")
        self.keep = keep
        super().__init__(model, tokenizer, name=name)

    def _settings(self) -> dict[str, Any]:
        return {"keep": self.keep}

    def memory_needed(self, tokens: int, cache: bool = True) -> int:
        return super().memory_needed(min(tokens, self.keep), cache)

    def _head(self, ids: Sequence[int]) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [ids[0]] if bos is not None and len(ids) and ids[0] == bos else []

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[list[int]]:
        cut = []
        for p in prompts:
            head = self._head(p.ids)
            start = max(len(head), len(p.ids) - (self.keep - len(head)))  # first kept token after the head
            cut.append(Prompt(head + list(p.ids[start:]), len(head) + max(0, p.context_end - start)))
        return super().generate(cut, max_new_tokens)

    def token_nll(self, ids: Sequence[int], score_from: int) -> torch.Tensor:
        head = self._head(ids)

        def piece(end: int) -> tuple[int, torch.Tensor]:
            first = max(score_from, end - self.keep // 2)
            start = max(len(head), end - (self.keep - len(head)))
            window = head + list(ids[start:end])
            return first, CausalLMAdapter.token_nll(self, window, first - start + len(head))

        return piecewise_nll(len(ids), score_from, piece)


def piecewise_nll(length: int, score_from: int, score_piece: Callable[[int], tuple[int, torch.Tensor]]) -> torch.Tensor:
    """Per-token NLL of tokens [score_from, length), scored back to front in pieces.

    `score_piece(end)` scores the piece that ends at `end` and returns (its first token, its per-token NLL);
    for adapters whose model sees a bounded window (truncation, SharedLLM's local window).
    """
    if not 1 <= score_from < length:
        raise ValueError(f"score_from must be in [1, {length}), got {score_from}")
    pieces, end = [], length
    while end > score_from:
        end, part = score_piece(end)
        pieces.append(part)
    return torch.cat(pieces[::-1])


def forward_bytes(config: Any, tokens: int, width: int, eager: bool = False, *, cache: bool = True) -> int:
    """Estimated bytes beyond the weights for a forward pass over `tokens` tokens: the KV cache of every
    layer (`cache`, for generation; without it one layer's keys and values at a time, as perplexity runs)
    plus one layer's activations per token, and heads x tokens^2 scores for the `eager` kernel (the
    others never hold the whole score matrix). A SharedLLM costs about the same per token (trees and
    lower-model activations instead of a full KV cache)."""
    text = config.get_text_config()
    hidden, layers = text.hidden_size, text.num_hidden_layers
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    inner = getattr(text, "intermediate_size", None) or 4 * hidden
    per_token = (2 * (layers if cache else 1) * kv_heads * head_dim + 4 * hidden + 3 * inner) * width
    scores = heads * tokens * tokens * 4 if eager else 0
    return per_token * tokens + scores


def check_fits(
    memory_needed: Callable[..., int],
    lengths: Sequence[int],
    batch_size: int,
    batch_tokens: int,
    device: torch.device,
    cache: bool = True,
) -> None:
    """Refuse lengths whose forward pass cannot fit in the free memory of `device`, before any prompt is built
    (a prompt of billions of tokens would otherwise grow until the machine stalls). `cache`: some task
    generates (a KV cache of every layer); perplexity alone scores one window at a time, batch 1, no cache."""
    longest = max(lengths)
    batch = max(1, min(batch_size, batch_tokens // longest)) if cache else 1
    need = memory_needed(longest, cache=cache) * batch
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        import psutil

        free = psutil.virtual_memory().available
    if need > free:
        raise LongwinError(
            f"length {longest} needs about {need / 2**30:,.1f} GiB for one forward pass but "
            f"{free / 2**30:,.1f} GiB is free on {device.type}: use shorter --lengths"
        )


def model_digest(model: PreTrainedModel) -> str:
    """A content digest of a model: its config and, per tensor, name, dtype, shape, sum, squared norm and
    a few values. Any training step or rescaled RoPE changes it; it costs one pass over the weights on
    their own device (no copy to the CPU, no file hashing), so a 7B model on a GPU takes well under a second.
    """
    # SharedLLM's `local_length` acts only through the adapter's local window, which the fingerprint holds on its
    # own; left out, folders saved before it was recorded keep their cached results
    config = {
        k: v
        for k, v in model.config.to_dict().items()
        if k not in ("_name_or_path", "transformers_version", "_attn_implementation_autoset", "local_length")
    }
    rows: list[Any] = [config]
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            flat = tensor.detach().reshape(-1).float()
            rows.append(
                [
                    name,
                    str(tensor.dtype),
                    list(tensor.shape),
                    float(flat.sum()),
                    float(torch.dot(flat, flat)),
                    flat[:4].tolist(),
                    flat[-4:].tolist(),
                ]
            )
    return json_digest(rows)


def json_digest(data: Any) -> str:
    """A short stable digest of JSON-able data (dict keys sorted)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _config_window(config: Any) -> int | None:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _has_learned_positions(model: Any) -> bool:
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Embedding) and name.rsplit(".", 1)[-1] in _POSITION_TABLES:
            return True
    return False


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(gen, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
