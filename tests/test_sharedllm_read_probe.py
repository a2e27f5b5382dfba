"""experiments/sharedllm_read_probe.py: its with/without-trees comparison sees exactly what the trees add."""

from __future__ import annotations

import sharedllm_read_probe as probe
import torch

from conftest import make_tiny_llama
from longwin.methods.sharedllm import SharedLLMForCausalLM


def _batch() -> dict[str, torch.Tensor]:
    window = torch.randint(3, 300, (1, 12))
    labels = window.clone()
    labels[:, :4] = -100
    return {"input_ids": window, "labels": labels, "context_input_ids": torch.randint(3, 300, (1, 64))}


def test_an_untrained_stack_scores_the_same_with_and_without_trees_and_a_trained_one_does_not():
    torch.manual_seed(0)
    model = SharedLLMForCausalLM.from_base(
        make_tiny_llama(layers=3), num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4
    ).eval()
    batch = _batch()
    with_trees, without = probe._loss(model, batch, True), probe._loss(model, batch, False)
    assert abs(with_trees[0] - without[0]) < 1e-5 and with_trees[2] == without[2] == 8
    assert all(n["cross_o_proj"] == 0 and n["self_o_proj"] > 0 for n in probe.norms(model))
    with torch.no_grad():
        for block, layer in zip(model.cross_attn, model.model.layers):
            block.o_proj.weight.copy_(layer.self_attn.o_proj.weight)
    assert abs(probe._loss(model, batch, True)[0] - without[0]) > 1e-4
    assert all(n["cross_o_proj"] > 0 for n in probe.norms(model))


def test_untrained_wraps_the_base_as_the_lm_recipe_does_with_a_scaled_copy_of_o_proj():
    model = probe.untrained(make_tiny_llama(layers=5), 0.25)
    assert (model.config.num_lower_layers, model.config.chunk_size, model.config.kv_per_node) == (4, 1024, 32)
    assert [round(n["cross_o_proj"] / n["self_o_proj"], 6) for n in probe.norms(model)] == [0.25] * 4
