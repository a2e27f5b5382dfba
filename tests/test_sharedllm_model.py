"""SharedLLMForCausalLM on tiny random Llama-family models: equivalences the paper's design implies."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from conftest import make_tiny_llama
from longwin.errors import LongwinError
from longwin.methods.sharedllm import SharedLLMConfig, SharedLLMForCausalLM

pytestmark = pytest.mark.usefixtures("one_thread")


OPTS = dict(num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4)
# Qwen2 and Mistral twins of the tiny Llama: 4 heads of 8 (2 KV heads), width 32
TINY_SHAPE = dict(vocab_size=320, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)


def wrapped(layers: int = 3, seed: int = 0, active: bool = True, **opts) -> SharedLLMForCausalLM:
    """A SharedLLM over a tiny GQA Llama; `active` gives o_proj non-zero weights so the context matters."""
    model = SharedLLMForCausalLM.from_base(make_tiny_llama(layers=layers, seed=seed), **{**OPTS, **opts})
    if active:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for block in model.cross_attn:
                block.o_proj.weight.copy_(torch.randn(block.o_proj.weight.shape, generator=gen) * 0.3)
    return model


def ids(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 320, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_zero_initialised_cross_attention_reproduces_the_base_model(attn):
    base = make_tiny_llama(layers=3, attn_implementation=attn)
    x, context = ids(2, 12), ids(2, 100, seed=1)
    expected = base(input_ids=x).logits
    model = SharedLLMForCausalLM.from_base(base, **OPTS)
    out = model(input_ids=x, context_input_ids=context)
    assert out.tree_kv.num_keys == 3 * (2 + 1) * 4  # 3 whole chunks of 32 (4 oldest tokens dropped), (h+1)p each
    assert torch.equal(out.logits, expected)
    assert torch.equal(base(input_ids=x).logits, expected)  # the adopted base model still runs as before
    for block in model.cross_attn:  # and the injection is live: a non-zero o_proj changes the output
        torch.nn.init.normal_(block.o_proj.weight)
    assert not torch.allclose(model(input_ids=x, context_input_ids=context).logits, expected, atol=1e-3)


def test_cross_attention_starts_with_each_layers_own_queries():
    """Its keys are the same layer's (the lower model's), so q·k means something only with the layer's own
    queries: its input norm too, whose gains in a trained model are far from 1 (SmolLM2's layer 0: ~0.001)."""
    base = make_tiny_llama(layers=3)
    with torch.no_grad():
        for layer in base.model.layers:
            layer.input_layernorm.weight.uniform_(0.01, 0.5)
    model = SharedLLMForCausalLM.from_base(base, **OPTS, cross_attn_init_scale=0.5)
    h = torch.randn(1, 5, base.config.hidden_size)
    with torch.no_grad():
        for block, layer in zip(model.cross_attn, model.model.layers):
            torch.testing.assert_close(block.q_proj(block.norm(h)), layer.self_attn.q_proj(layer.input_layernorm(h)))
            torch.testing.assert_close(block.o_proj.weight, 0.5 * layer.self_attn.o_proj.weight)
    with pytest.raises(LongwinError, match="cross_attn_init_scale"):
        SharedLLMForCausalLM.from_base(make_tiny_llama(layers=3), **OPTS, cross_attn_init_scale=-1.0)


@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_other_llama_family_models(family):
    kw = dict(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    base = (
        MistralForCausalLM(MistralConfig(**kw)) if family == "mistral" else Qwen2ForCausalLM(Qwen2Config(**kw))
    ).eval()
    x, context = ids(1, 8) % 100, ids(1, 64) % 100
    expected = base(input_ids=x).logits
    model = SharedLLMForCausalLM.from_base(base, **OPTS)
    assert torch.equal(model(input_ids=x, context_input_ids=context).logits, expected)


def test_tree_kv_shapes_follow_h_plus_1_times_p():
    model = wrapped(chunk_size=64, tree_height=3, kv_per_node=2)
    tree = model(input_ids=ids(1, 5), context_input_ids=ids(1, 64 * 3)).tree_kv
    assert [k.shape for k in tree.keys] == [torch.Size([1, 2, 3 * 4 * 2, 8])] * 2  # GQA: 2 kv heads of dim 8
    assert tree.key_mask is None and tree.chunk_counts.tolist() == [3]


def _chunk_permuted(context: torch.Tensor, order: list[int], chunk: int) -> torch.Tensor:
    return torch.cat([context[:, i * chunk : (i + 1) * chunk] for i in order], dim=1)


def test_chunk_order_matters_only_through_chunk_position_ids():
    x, context = ids(1, 10), ids(1, 4 * 32, seed=2)
    permuted = _chunk_permuted(context, [2, 0, 3, 1], 32)
    with_positions = wrapped()
    a = with_positions(input_ids=x, context_input_ids=context).logits
    b = with_positions(input_ids=x, context_input_ids=permuted).logits
    assert (a - b).abs().max() > 1e-3
    without = wrapped(chunk_positions=False)
    a = without(input_ids=x, context_input_ids=context).logits
    b = without(input_ids=x, context_input_ids=permuted).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # only the summation order of the keys changes


def test_query_aware_policy_descends_into_the_half_that_matches_the_query():
    model = wrapped(query_aware=True)
    query = ids(1, 16, seed=5)
    noise = ids(4, 16, seed=6)
    # chunk 0 holds the query text in its left half, chunk 1 in its right half
    context = torch.cat([query, noise[0:1], noise[1:2], noise[2:3], noise[3:4], query], dim=1)
    spans = model(input_ids=query, context_input_ids=context).tree_kv.spans
    # the level-1 preserved node is the half NOT descended into
    assert [16, 16] in spans[0].tolist()  # went left: the right half is preserved whole
    assert [0, 16] in spans[1].tolist()  # went right: the left half is preserved whole
    always_right = wrapped(query_aware=False)
    spans = always_right(input_ids=query, context_input_ids=context).tree_kv.spans
    assert [0, 16] in spans[0].tolist() and [0, 16] in spans[1].tolist()


def test_batch_of_two_equals_two_batches_of_one():
    model = wrapped()
    x = ids(2, 12)
    lengths = [12, 9]
    contexts = [ids(1, 3 * 32 + 5, seed=3), ids(1, 2 * 32 + 7, seed=4)]  # 3 and 2 chunks
    width = max(c.shape[1] for c in contexts)
    context = torch.zeros(2, width, dtype=torch.long)
    context_mask = torch.zeros(2, width, dtype=torch.long)
    for i, c in enumerate(contexts):  # left padding
        context[i, width - c.shape[1] :] = c[0]
        context_mask[i, width - c.shape[1] :] = 1
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0  # right padding of the second local window
    batched = model(
        input_ids=x, attention_mask=mask, context_input_ids=context, context_attention_mask=context_mask
    ).logits
    for i, (c, n) in enumerate(zip(contexts, lengths)):
        single = model(input_ids=x[i : i + 1, :n], context_input_ids=c).logits
        torch.testing.assert_close(batched[i : i + 1, :n], single, rtol=1e-5, atol=1e-5)


def test_a_context_shorter_than_one_chunk_leaves_the_base_model_unchanged():
    model = wrapped()
    x = ids(2, 6)
    out = model(input_ids=x, context_input_ids=ids(2, 20))
    assert out.tree_kv.num_keys == 0
    torch.testing.assert_close(out.logits, model(input_ids=x).logits, rtol=0, atol=0)
    mask = torch.ones(2, 70, dtype=torch.long)
    mask[1, :50] = 0  # in a batch, a sample without a whole chunk attends to nothing (and gets no NaN)
    mixed = model(input_ids=x, context_input_ids=ids(2, 70), context_attention_mask=mask).logits
    torch.testing.assert_close(mixed[1], model(input_ids=x[1:]).logits[0], rtol=1e-5, atol=1e-5)
    assert (mixed[0] - model(input_ids=x[:1]).logits[0]).abs().max() > 1e-3


def test_decoding_with_the_cached_tree_equals_recomputing_from_scratch():
    model = wrapped(query_aware=False)  # a tree independent of the query, so a full recompute builds the same one
    prompt, context = ids(2, 8), ids(2, 3 * 32, seed=7)
    built = []
    original = model.build_tree
    model.build_tree = lambda *a, **k: built.append(1) or original(*a, **k)
    generated = model.generate(
        input_ids=prompt,
        context_input_ids=context,
        max_new_tokens=6,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=0,
    )
    assert len(built) == 1  # once, at prefill
    model.build_tree = original
    sequences = generated.sequences
    for step, scores in enumerate(generated.scores):
        prefix = sequences[:, : prompt.shape[1] + step]
        full = model(input_ids=prefix, context_input_ids=context).logits[:, -1]
        torch.testing.assert_close(scores, full, rtol=1e-5, atol=1e-5)


def test_query_aware_decoding_keeps_the_prefill_tree():
    model = wrapped(query_aware=True)
    prompt, context = ids(1, 8), ids(1, 3 * 32, seed=8)
    prefill = model(input_ids=prompt, context_input_ids=context, use_cache=True)
    token = prefill.logits[:, -1:].argmax(-1)
    step = model(input_ids=token, past_key_values=prefill.past_key_values, tree_kv=prefill.tree_kv).logits[:, -1]
    full = model(input_ids=torch.cat([prompt, token], 1), tree_kv=prefill.tree_kv).logits[:, -1]
    torch.testing.assert_close(step, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("untie", [False, True])
def test_save_and_load_round_trip_through_the_auto_classes(tmp_path, untie):
    model = wrapped()
    if untie:
        model.untie_lower()
    x, context = ids(1, 7), ids(1, 70, seed=9)
    expected = model(input_ids=x, context_input_ids=context).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(loaded, SharedLLMForCausalLM)
    assert loaded.config.share_lower is (not untie) and loaded.config.kv_per_chunk == 12
    assert torch.equal(loaded(input_ids=x, context_input_ids=context).logits, expected)


@pytest.mark.parametrize("untie", [False, True])
def test_training_the_upper_bottom_layers_moves_the_lower_model_only_while_shared(untie):
    model = wrapped()
    x, context = ids(1, 7), ids(1, 70, seed=9)
    before = model.build_tree(context, input_ids=x)
    if untie:
        model.untie_lower()
        assert all(not p.requires_grad for p in model.lower.parameters())
    with torch.no_grad():
        model.model.layers[1].self_attn.k_proj.weight.mul_(2)
    after = model.build_tree(context, input_ids=x)
    assert torch.equal(before.keys[0], after.keys[0])
    assert torch.equal(before.keys[1], after.keys[1]) is untie


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    model = wrapped()
    model.train()
    model.config.split_noise = 0.0
    x, context = ids(2, 10), ids(2, 64, seed=10)

    def grads():
        model.zero_grad()
        loss = model(input_ids=x, context_input_ids=context, labels=x).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.cross_attn.parameters()]

    loss, plain = grads()
    model.gradient_checkpointing_enable()
    loss_ckpt, ckpt = grads()
    assert torch.equal(loss, loss_ckpt)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, ckpt))
    assert any(g.abs().sum() > 0 for g in plain)


def test_user_errors_are_one_line_longwin_errors():
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, bos_token_id=0, eos_token_id=0))
    with pytest.raises(LongwinError, match="Llama-family"):
        SharedLLMForCausalLM.from_base(gpt2)
    for m in (0, 4):
        with pytest.raises(LongwinError, match="num_lower_layers"):
            SharedLLMForCausalLM.from_base(make_tiny_llama(layers=3), **{**OPTS, "num_lower_layers": m})
    with pytest.raises(LongwinError, match="divisible"):
        SharedLLMForCausalLM.from_base(make_tiny_llama(), **{**OPTS, "chunk_size": 30})
    with pytest.raises(LongwinError, match="too small"):
        SharedLLMForCausalLM.from_base(make_tiny_llama(), **{**OPTS, "kv_per_node": 16})
    with pytest.raises(LongwinError, match="batch size"):
        wrapped()(input_ids=ids(2, 4), context_input_ids=ids(1, 64))
    with pytest.raises(LongwinError, match="base_config"):
        SharedLLMForCausalLM(SharedLLMConfig())
    windowed = MistralForCausalLM(MistralConfig(**TINY_SHAPE, num_hidden_layers=2, sliding_window=16))
    with pytest.raises(LongwinError, match="sliding window"):  # a node of a whole chunk (32) is encoded at once
        SharedLLMForCausalLM.from_base(windowed, **OPTS)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_the_cheap_last_token_probe_equals_a_full_one_layer_pass(family):
    from longwin.methods.sharedllm.lower import last_states, last_token_state, truncated_view

    if family == "llama":
        base = make_tiny_llama(layers=2)
    else:  # Qwen2 has q/k/v biases
        torch.manual_seed(0)
        base = Qwen2ForCausalLM(Qwen2Config(**TINY_SHAPE, num_hidden_layers=2)).eval()
    view = truncated_view(base.model, 1)
    x = ids(3, 24)
    torch.testing.assert_close(last_token_state(view, x), last_states(view, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_the_node_encoder_keeps_what_a_whole_lower_model_pass_would(family, layers):
    """The kept positions' keys and values equal those of a full M-layer pass, though layer M-2 runs its
    queries and MLP at the kept positions only and layer M-1 stops at their keys and values (YaRN-scaled
    Llama, Qwen2 with q/k/v biases, Mistral with a sliding window longer than the node)."""
    from longwin.methods.sharedllm.lower import NodeEncoder, truncated_view
    from longwin.methods.sharedllm.tree import keep_positions
    from longwin.models.compat import cache_layer_kv, output_cache
    from longwin.rope import scale_rope

    torch.manual_seed(0)
    if family == "llama":
        base = make_tiny_llama(layers=3)
        base = type(base)(scale_rope(base.config, "yarn", 4 * base.config.max_position_embeddings)).eval()
    elif family == "qwen2":
        base = Qwen2ForCausalLM(Qwen2Config(**TINY_SHAPE, num_hidden_layers=3)).eval()
    else:
        base = MistralForCausalLM(MistralConfig(**TINY_SHAPE, num_hidden_layers=3, sliding_window=32)).eval()
    x, keep = ids(3, 24), keep_positions(24, 6)
    with torch.no_grad():
        cache = output_cache(truncated_view(base.model, layers)(input_ids=x, use_cache=True))
        got = NodeEncoder.of(base.model, layers)(x, keep)
    assert len(got) == layers
    for layer, (k, v) in enumerate(got):
        want_k, want_v = cache_layer_kv(cache, layer)
        torch.testing.assert_close(k, want_k[:, :, keep], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(v, want_v[:, :, keep], rtol=1e-5, atol=1e-5)


def test_encoding_in_bounded_batches_builds_the_same_tree():
    x, context = ids(2, 8), ids(2, 5 * 32, seed=11)
    whole = wrapped(encode_batch_tokens=0).build_tree(context, input_ids=x)
    batched = wrapped(encode_batch_tokens=40).build_tree(context, input_ids=x)
    assert torch.equal(whole.spans, batched.spans)
    for a, b in zip(whole.keys + whole.values, batched.keys + batched.values):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_chunk_rotation_adds_the_chunk_id_to_the_local_position_even_with_yarn_scaling():
    from longwin.methods.sharedllm.rotary import rotate
    from longwin.rope import scale_rope

    base = make_tiny_llama(layers=2)
    config = scale_rope(base.config, "yarn", 256)
    model = SharedLLMForCausalLM.from_base(type(base)(config).eval(), **OPTS)
    rotary = model.model.rotary_emb
    assert rotary.attention_scaling != 1.0
    k = torch.randn(3, 2, 5, 8)
    local = torch.arange(5)[None].expand(3, -1)
    chunk = torch.tensor([0, 4, 9])
    stored = rotate(k, *rotary(k, local))  # what the lower model caches: RoPE at node-local positions
    expected = rotate(k, *rotary(k, local + chunk[:, None]))  # RoPE at local + chunk id, scaled once
    torch.testing.assert_close(model._rotate_by_chunk(stored, chunk), expected, rtol=1e-5, atol=1e-5)


def test_queries_sit_at_the_chunk_count():
    model = wrapped()
    mask = torch.ones(2, 106, dtype=torch.long)
    mask[1, :40] = 0  # sample 1 holds 66 real tokens: 2 whole chunks
    tree = model.build_tree(ids(2, 106), mask, input_ids=ids(2, 4))
    assert tree.chunk_counts.tolist() == [3, 2]
    cos, sin = model.model.rotary_emb(tree.query_cos, torch.tensor([[3], [2]]))
    assert torch.equal(tree.query_cos, cos) and torch.equal(tree.query_sin, sin)
    assert tree.key_mask.sum(1).tolist() == [3 * 12, 2 * 12]


def test_query_length_makes_the_prompt_the_query():
    model = wrapped(query_aware=True)
    context, prompt, response = ids(1, 4 * 32, seed=12), ids(1, 6, seed=13), ids(1, 5, seed=14)
    from_prompt = model.build_tree(context, input_ids=prompt)
    with_response = model.build_tree(
        context, input_ids=torch.cat([prompt, response], 1), query_length=torch.tensor([6])
    )
    assert torch.equal(from_prompt.spans, with_response.spans)


def test_no_query_descends_right_like_a_query_unaware_model():
    """LM-stage examples (query_length 0) must not let the window's last token, the text being predicted,
    steer the trees: they get the paper's always-right trees, in a batch with a query-aware sample."""
    aware, unaware = wrapped(query_aware=True), wrapped(query_aware=False)
    context, window = ids(2, 4 * 32, seed=15), ids(2, 8, seed=16)
    mixed = aware.build_tree(context, input_ids=window, query_length=torch.tensor([0, 8]))
    right = unaware.build_tree(context, input_ids=window)
    queried = aware.build_tree(context, input_ids=window)
    per_sample = mixed.spans.shape[0] // 2
    assert torch.equal(mixed.spans[:per_sample], right.spans[:per_sample])
    assert torch.equal(mixed.spans[per_sample:], queried.spans[per_sample:])
    assert not torch.equal(queried.spans[:per_sample], right.spans[:per_sample]), "the query changed nothing"


def test_from_base_accepts_a_model_folder(tmp_path, tiny_tokenizer):
    base = make_tiny_llama(layers=3)
    base.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    x, context = ids(1, 6), ids(1, 64, seed=15)
    model = SharedLLMForCausalLM.from_base(str(tmp_path), **OPTS)
    torch.testing.assert_close(
        model(input_ids=x, context_input_ids=context).logits, base(input_ids=x).logits, rtol=0, atol=0
    )
