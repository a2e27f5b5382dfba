"""Training examples of position schemes: every token attends to every earlier one, whatever the ids' jumps."""

from __future__ import annotations

import json
import random

import pytest
import torch

from conftest import _TEXT, make_tiny_llama


def corpus_pool(tokenizer, folder):
    from longwin.data.pool import build_pool

    rng = random.Random(0)
    corpus = folder / "c.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": str(i), "text": " ".join(rng.choice(_TEXT) for _ in range(30))}) + "\n" for i in range(6)
        )
    )
    return build_pool(str(corpus), tokenizer, min_tokens=48, val_fraction=0, seed=0)


@pytest.mark.parametrize("scheme", ["cream", "pose", "randpos"])
def test_segments_are_one_sequence_to_the_model(scheme, tiny_tokenizer, tmp_path, monkeypatch, one_thread):
    """CREAM's and PoSE's ids jump between segments; without an attention mask transformers infers packed
    sequences from such jumps, and flash-attention/flex then mask the segments off from each other."""
    from longwin.methods.positions.dataset import PositionSchemeDataset

    data = PositionSchemeDataset(
        corpus_pool(tiny_tokenizer, tmp_path), scheme, train_len=48, target_len=256, num_samples=4, seed=0
    )
    item = data[0]
    assert (item["position_ids"].diff() > 1).any(), "the example should jump somewhere"
    assert torch.equal(item["attention_mask"], torch.ones_like(item["input_ids"]))

    from transformers import masking_utils

    if hasattr(masking_utils, "find_packed_sequence_indices"):  # any inference of packing is a failure here
        monkeypatch.setattr(masking_utils, "find_packed_sequence_indices", _no_packing)
    model = make_tiny_llama(max_position_embeddings=256)
    batch = {k: v[None] for k, v in item.items() if k != "labels"}
    last = model(**batch).logits[0, -1]
    changed = dict(batch, input_ids=batch["input_ids"].clone())
    changed["input_ids"][0, 0] = (changed["input_ids"][0, 0] + 1) % 320
    assert not torch.allclose(model(**changed).logits[0, -1], last), "the last token must see the first"


def _no_packing(position_ids: torch.Tensor) -> None:
    raise AssertionError("transformers inferred packed sequences from the position ids")
