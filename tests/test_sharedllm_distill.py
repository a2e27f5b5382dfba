"""SharedLLM's context distillation: the sparse KL, the key-token weights, the teacher cache and the stage end to
end through `longwin train`."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
import torch

from conftest import make_tiny_llama
from longwin.cli import main
from longwin.errors import LongwinError
from longwin.methods.sharedllm.context_distill import (
    TARGETS,
    ContextDistillCollator,
    ContextDistillDataset,
    DistillSettings,
    TeacherCache,
    distill_loss,
    sparse_kl,
    teacher_targets,
    tree_kl,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = DistillSettings("tiny", top_k=8, key_weight=5.0)


class InductionTeacher(torch.nn.Module):
    """Predicts, after a token seen before in its input, the token that followed it then (a perfect copier);
    anything else is uniform. Counts its forward passes."""

    def __init__(self, vocab: int = 50) -> None:
        super().__init__()
        self.vocab, self.calls = vocab, 0
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device to read

    def forward(self, input_ids, use_cache=False, logits_to_keep=0):
        self.calls += 1
        ids = input_ids[0].tolist()
        logits = torch.zeros(1, len(ids), self.vocab)
        for t, token in enumerate(ids):
            earlier = [j for j in range(t) if ids[j] == token]
            if earlier:
                logits[0, t, ids[earlier[-1] + 1]] = 12.0
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


def planted_example(seed: int = 0) -> tuple[list[int], list[int], list[int]]:
    """(context, window, span): a span of 10 unique tokens early in the context, repeated at the window's end;
    context and window fillers use disjoint tokens, so only the span links them."""
    rng = random.Random(seed)
    span = list(range(40, 50))
    context = span + [rng.randrange(0, 20) for _ in range(60)]
    window = [rng.randrange(20, 40) for _ in range(20)] + span
    return context, window, span


def test_the_loss_is_zero_when_student_and_teacher_agree():
    teacher = make_tiny_llama(vocab_size=320, max_position_embeddings=256)
    context, window = list(range(3, 99)), list(range(100, 140))
    targets = {k: v.unsqueeze(0) for k, v in teacher_targets(teacher, context, window, SETTINGS).items()}
    with torch.no_grad():
        same = teacher(input_ids=torch.tensor([context + window])).logits[:, len(context) :]
    assert abs(float(distill_loss(same, targets))) < 1e-5
    assert float(distill_loss(same + torch.randn_like(same), targets)) > 1e-3


def test_the_sparse_kl_is_the_exact_kl_of_the_top_k_plus_rest_distributions():
    torch.manual_seed(0)
    teacher, student = torch.randn(5, 12), torch.randn(5, 12)
    logp = torch.log_softmax(teacher, -1)
    top = logp.topk(4, -1)
    rest = logp.scatter(-1, top.indices, float("-inf")).logsumexp(-1)
    got = sparse_kl(student, top.values, top.indices, rest)
    logq = torch.log_softmax(student, -1)
    q = torch.cat([logq.gather(-1, top.indices), logq.scatter(-1, top.indices, float("-inf")).logsumexp(-1, True)], -1)
    p = torch.cat([top.values, rest.unsqueeze(-1)], -1)
    assert torch.allclose(got, (p.exp() * (p - q)).sum(-1), atol=1e-6)
    full = torch.nn.functional.kl_div(logq, logp, log_target=True, reduction="none").sum(-1)
    assert (got <= full + 1e-6).all()  # coarsening can only lose divergence
    whole = logp.topk(12, -1)  # k = V: no rest bucket, the full KL
    none = torch.full((5,), float("-inf"))
    assert torch.allclose(sparse_kl(student, whole.values, whole.indices, none), full, atol=1e-5)


def test_key_token_weights_single_out_a_planted_dependency():
    context, window, span = planted_example()
    targets = teacher_targets(InductionTeacher(), context, window, SETTINGS)
    # prediction i is of window token i + 1: the key ones are the span's tokens after its first, in the window
    keys = {window[i + 1] for i, w in enumerate(targets["token_weight"].tolist()) if w > 1}
    assert keys == set(span[1:])
    assert targets["token_weight"].max() == SETTINGS.key_weight and targets["token_weight"].min() == 1.0


def test_teacher_targets_are_stored_once_and_refused_under_other_settings(tmp_path):
    examples = [dict(zip(("context_ids", "input_ids"), planted_example(s)[:2])) for s in range(3)]
    teacher = InductionTeacher()
    cache = TeacherCache(tmp_path / "cache", SETTINGS)
    cache.fill(teacher, examples, 3)
    assert teacher.calls == 6  # two passes an example: with and without the context
    TeacherCache(tmp_path / "cache", SETTINGS).fill(teacher, examples, 3)
    assert teacher.calls == 6  # a rerun reuses them
    changed = [{**examples[0], "input_ids": examples[0]["input_ids"][:-1]}, *examples[1:]]
    share = cache.fill(teacher, changed, 3)
    assert teacher.calls == 8  # only the example whose tokens changed is scored again
    assert 0 < share < 1  # the share of key tokens among the stored predictions
    assert cache.fill(teacher, changed, 3) == share and teacher.calls == 8  # read back from the stored files
    with pytest.raises(LongwinError, match="other settings"):
        TeacherCache(tmp_path / "cache", DistillSettings("tiny", top_k=4))


def test_the_dataset_repeats_its_examples_as_epochs_and_the_collator_pads_targets(tmp_path):
    examples = [{"context_ids": list(range(3, 67)), "input_ids": list(range(70, 70 + n))} for n in (12, 20)]
    teacher = make_tiny_llama(vocab_size=320, max_position_embeddings=256)
    cache = TeacherCache(tmp_path / "cache", SETTINGS)
    cache.fill(teacher, examples, 2)
    data = ContextDistillDataset(examples, cache, 2, 5)
    assert len(data) == 5 and data[4]["input_ids"] == data[0]["input_ids"]
    batch = ContextDistillCollator(pad_token_id=0, chunk_size=32)([data[0], data[1]])
    assert batch["input_ids"].shape == (2, 20) and batch["teacher_logprobs"].shape == (2, 19, 8)
    assert batch["token_weight"][0, 11:].eq(0).all() and batch["token_weight"][0, :11].ge(1).all()
    assert set(TARGETS) <= set(batch)


def _train_args(model_dir, corpus, out, *extra):
    return [
        "train", "--method", "sharedllm", "--model", str(model_dir), "--data", str(corpus),
        "--target-length", "192", "--sharedllm-chunk-size", "32", "--sharedllm-tree-height", "2",
        "--sharedllm-kv-per-node", "4", "--sharedllm-lower-layers", "1", "--sharedllm-local-length", "48",
        "--sharedllm-stage", "distill", "--sharedllm-distill-examples", "2", "--max-steps", "4",
        "--per-device-train-batch-size", "1", "--use-cpu", "true", "--output-dir", str(out),
        "--learning-rate", "1e-2", "--save-steps", "100", "--disable-tqdm", "true", *extra,
    ]  # fmt: skip


@pytest.fixture
def long_setup(tiny_setup, tiny_tokenizer, tmp_path):
    """tiny_setup's corpus with a base whose native window (256) holds context + local window (192)."""
    _, corpus = tiny_setup
    model_dir = tmp_path / "base256"
    make_tiny_llama(max_position_embeddings=256).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    return model_dir, corpus


def test_the_distill_stage_trains_from_stored_targets_and_the_trees_are_measured(long_setup, tmp_path):
    model_dir, corpus = long_setup
    out = tmp_path / "distilled"
    assert main(_train_args(model_dir, corpus, out)) == 0
    card = json.loads((out / "longwin_training.json").read_text())
    assert card["stage"] == "distill" and card["steps"] == 4 and card["loss"] == "ContextDistillTrainer's"
    assert card["distill"]["examples"] == 2 and card["distill"]["epochs"] == 2.0
    assert card["distill"]["cache"] == f"{out}.teacher-targets"
    assert sorted(p.name for p in (tmp_path / "distilled.teacher-targets").iterdir()) == [
        "0.pt",
        "1.pt",
        "settings.json",
    ]
    from transformers import AutoModelForCausalLM

    import longwin.methods.sharedllm  # noqa: F401  (registers the model type)

    assert type(AutoModelForCausalLM.from_pretrained(out)).__name__ == "SharedLLMForCausalLM"


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_tree_kl_compares_the_same_model_with_and_without_its_trees(tmp_path, scale):
    from longwin.methods.sharedllm import SharedLLMForCausalLM

    teacher = make_tiny_llama(vocab_size=320, max_position_embeddings=256)
    student = SharedLLMForCausalLM.from_base(
        make_tiny_llama(vocab_size=320, max_position_embeddings=256),
        num_lower_layers=1, chunk_size=32, tree_height=2, kv_per_node=4, cross_attn_init_scale=scale,
    )  # fmt: skip
    examples = [{"context_ids": list(range(3, 67)), "input_ids": list(range(70, 90))}]
    cache = TeacherCache(tmp_path / "cache", SETTINGS)
    cache.fill(teacher, examples, 1)
    measured = tree_kl(student, ContextDistillDataset(examples, cache, 1, 1))
    ((with_trees, without),), ((plain_with, plain_without),) = measured["weighted"], measured["plain"]
    assert without > 0  # the teacher read the context; the student without its trees did not
    if scale:
        assert with_trees != pytest.approx(without, abs=1e-6)  # what the trees add changes the student's KL
    else:
        assert with_trees == pytest.approx(without, abs=1e-6)  # a zero cross-attention reads nothing
        assert plain_with == pytest.approx(plain_without, abs=1e-6)
    assert plain_without > 0


def test_distill_options_need_the_distill_stage_and_a_window_the_teacher_can_read(
    long_setup, tiny_setup, tmp_path, capsys
):
    model_dir, corpus = long_setup
    lm = _train_args(model_dir, corpus, tmp_path / "o")
    lm[lm.index("--sharedllm-stage") + 1] = "lm"
    assert main(lm) == 2
    assert "--sharedllm-distill-examples needs --sharedllm-stage distill" in capsys.readouterr().err
    short_window, _ = tiny_setup  # native window 64 < the 192 tokens the teacher would read
    assert main(_train_args(short_window, corpus, tmp_path / "o2")) == 2
    assert "--target-length must be at most 64, got 192" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o2.teacher-targets").exists()
