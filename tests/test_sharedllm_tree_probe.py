"""experiments/sharedllm_tree_probe.py: it finds the key's tokens and maps every kept KV back to its position."""

from __future__ import annotations

import sharedllm_tree_probe as probe
import torch

from conftest import make_tiny_llama
from longwin.methods.sharedllm import SharedLLMForCausalLM


def test_key_positions_finds_the_first_occurrence_of_the_digits(tiny_tokenizer):
    text = "The grass is green. The pass key is 4821. Remember it. 4821 is the pass key."
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    found = probe.key_positions(tiny_tokenizer, ids, "4821")
    assert found and tiny_tokenizer.decode(ids[found[0] : found[-1] + 1]).strip() == "4821"
    first = tiny_tokenizer("The grass is green. The pass key is 4821.", add_special_tokens=False)["input_ids"]
    assert found[-1] < len(first)
    assert probe.key_positions(tiny_tokenizer, ids, "9999") == []


def test_kept_resolution_covers_exactly_the_kept_kvs_in_key_order():
    model = SharedLLMForCausalLM.from_base(
        make_tiny_llama(layers=3), num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4
    ).eval()
    context = torch.randint(3, 300, (1, 96))
    tree = model.build_tree(context, None, torch.randint(3, 300, (1, 8)), None)
    size, order = probe.kept_resolution(model, tree)
    assert len(order) == tree.num_keys == 3 * 3 * 4  # 3 chunks x (h + 1) nodes x p KVs
    assert len(set(order)) == len(order) and max(order) < 96
    assert sorted(set(size.values())) == [8, 16]  # leaves of 8 tokens, one level-1 node of 16
    # layer-0 values depend on the token alone, so they name the position each kept KV came from
    layer = model.model.layers[0]
    with torch.no_grad():
        v = layer.self_attn.v_proj(layer.input_layernorm(model.model.embed_tokens(context[0, order])))
    expected = v.view(len(order), -1, tree.values[0].shape[-1]).transpose(0, 1)
    assert torch.allclose(tree.values[0][0], expected, atol=1e-5)


def test_cross_attention_mass_is_one_on_every_key_and_zero_on_none():
    model = SharedLLMForCausalLM.from_base(
        make_tiny_llama(layers=3), num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4
    ).eval()
    context, local = torch.randint(3, 300, (1, 96)), torch.randint(3, 300, (1, 8))
    _, order = probe.kept_resolution(model, model.build_tree(context, None, local, None))
    everything = probe.cross_attention_on(model, local, context, set(order), order)
    assert len(everything) == 2 and all(abs(m - 1.0) < 1e-5 for m in everything)
    assert probe.cross_attention_on(model, local, context, set(), order) == [0.0, 0.0]
