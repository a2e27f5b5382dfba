"""The streaming baseline: attention sinks plus a sliding window of recent tokens, prefilled in segments."""

from __future__ import annotations

from typing import Any


def streaming_prefill(model: Any, ids: Any, spec: dict[str, Any]) -> Any:
    """Chunked prefill keeping the KV of the first `stream_sinks` and the last `stream_window` tokens.

    Keys keep the RoPE of their absolute positions (no re-rotation): each query sees the true
    distances to the sinks and to the recent window, like sliding-window attention with sinks.
    """
    import torch
    from transformers import DynamicCache

    from longwin.models.compat import cache_keyword, cache_layer_kv, cache_layers, set_cache_layer_kv

    sinks, window, segment = spec["stream_sinks"], spec["stream_window"], spec["stream_segment"]
    cache, cache_key = DynamicCache(), cache_keyword(model)
    logits = None
    for start in range(0, ids.shape[1], segment):
        piece = ids[:, start : start + segment]
        positions = torch.arange(start, start + piece.shape[1])[None]
        logits = model(
            input_ids=piece, position_ids=positions, **{cache_key: cache}, use_cache=True, logits_to_keep=1
        ).logits
        for layer in range(cache_layers(cache)):
            keys, values = cache_layer_kv(cache, layer)
            if keys.shape[2] > sinks + window:
                keep = [keys[:, :, :sinks], keys[:, :, -window:]], [values[:, :, :sinks], values[:, :, -window:]]
                set_cache_layer_kv(cache, layer, torch.cat(keep[0], 2), torch.cat(keep[1], 2))
    return logits
