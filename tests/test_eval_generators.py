"""Prompt generators: the answer is present exactly once, where it was asked to be, prompts have the
requested length in tokens (within one filler unit), and a seed fixes every prompt."""

from __future__ import annotations

import copy
import json
import re

import pytest

from longwin.errors import LongwinError
from longwin.eval.haystack import essay_texts, split_sentences
from longwin.eval.options import NIAH_NEEDLE, EvalOptions
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks import make_task
from longwin.eval.tasks.kv_retrieval import gold_index
from longwin.eval.tasks.passkey import GARBAGE, info_line


@pytest.fixture
def fmt(tiny_tokenizer):
    return PromptFormatter(tiny_tokenizer)


def build_all(name, lengths, fmt, seed=0, reverse=False, **options):
    task = make_task(name, EvalOptions(**options), seed)
    cells = task.cells(lengths)
    built = {c.key: task.build(c, fmt) for c in (reversed(cells) if reverse else cells)}
    return task, cells, built


def max_tokens(tokenizer, pieces):
    return max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in pieces)


def test_fit_largest_finds_the_largest_fitting_size():
    assert fit_largest(lambda n: 3 * n + 10, 100, what="x") == 30
    assert fit_largest(lambda n: 3 * n + 10, 100, what="x", guess=29) == 30
    assert fit_largest(lambda n: 3 * n + 10, 100, what="x", guess=500) == 30
    assert fit_largest(lambda n: n, 10**9, what="x", limit=50) == 50
    with pytest.raises(LongwinError, match="too short for x"):
        fit_largest(lambda n: 3 * n + 10, 5, what="x")


def test_passkey_key_once_at_depth_and_length(fmt, tiny_tokenizer):
    sentence_tokens = max_tokens(tiny_tokenizer, [s + " " for s in GARBAGE.split(". ")])
    task, cells, built = build_all("passkey", [256, 512], fmt, samples=2, depths=[0.0, 25.0, 50.0, 100.0])
    assert len(cells) == 2 * 4 * 2
    for cell in cells:
        sample = built[cell.key]
        line = info_line(sample.answer)
        assert 10000 <= sample.answer <= 99999
        assert sample.text.count(line) == 1 and sample.text.count(str(sample.answer)) == 2
        assert cell.length - sentence_tokens - 2 <= len(sample.prompt.ids) <= cell.length
        before, after = sample.text.split(line)
        filler_before = len(before.split("\n", 1)[1])  # after the task description line
        filler_after = len(after.split("\nWhat is the pass key?")[0])
        share = 100 * filler_before / (filler_before + filler_after)
        assert abs(share - float(cell.position)) <= 100 * 25 / (filler_before + filler_after) + 1
        assert sample.text.endswith("What is the pass key? The pass key is")
    # the key is fixed by (seed, length, sample), not by depth: depths are comparable
    assert built["passkey/256/0/1"].answer == built["passkey/256/100/1"].answer


def test_same_seed_same_prompts_in_any_order(fmt):
    for name, lengths in (("passkey", [256]), ("kv-retrieval", [512]), ("needle", [512]), ("lines", [600])):
        _, _, first = build_all(name, lengths, fmt, samples=2)
        _, _, again = build_all(name, lengths, fmt, samples=2, reverse=True)
        _, _, other = build_all(name, lengths, fmt, seed=1, samples=2)
        assert {k: s.text for k, s in first.items()} == {k: s.text for k, s in again.items()}, name
        assert any(first[k].text != other[k].text for k in first), name


def test_kv_gold_pair_once_at_index(fmt, tiny_tokenizer):
    task, cells, built = build_all("kv-retrieval", [700, 1200], fmt, samples=1, positions=[0.0, 50.0, 100.0])
    pair_tokens = max_tokens(tiny_tokenizer, [f' "{s.info["gold_key"]}": "{s.answer}",\n' for s in built.values()])
    for cell in cells:
        sample = built[cell.key]
        data = sample.text.split("JSON data:\n", 1)[1].split("\n\nKey:", 1)[0]
        records = json.loads(data)
        keys = list(records)
        assert len(keys) == sample.info["num_pairs"] >= 2
        assert keys.index(sample.info["gold_key"]) == sample.info["gold_index"]
        assert sample.info["gold_index"] == gold_index(float(cell.position), len(keys))
        assert records[sample.info["gold_key"]] == sample.answer
        assert sample.text.count(sample.answer) == 1
        assert sample.text.count(sample.info["gold_key"]) == 2  # in the data and in the question
        assert cell.length - pair_tokens - 2 <= len(sample.prompt.ids) <= cell.length
        assert sample.text.endswith('"\nCorresponding value:')
    assert built["kv-retrieval/1200/0/0"].info["gold_index"] == 0
    last = built["kv-retrieval/1200/100/0"]
    assert last.info["gold_index"] == last.info["num_pairs"] - 1


def test_needle_whole_at_sentence_boundary_near_depth(fmt, tiny_tokenizer):
    sentences = split_sentences(essay_texts())
    task, cells, built = build_all("needle", [600, 1200], fmt, samples=1, depths=[0.0, 30.0, 70.0, 100.0])
    for cell in cells:
        sample = built[cell.key]
        haystack = sample.text.split("\n\nWhat is the best thing")[0]
        assert haystack.count(NIAH_NEEDLE) == 1
        at = haystack.index(NIAH_NEEDLE)
        assert at == 0 or haystack[at - 2] in ".!?\"')]"  # right after a sentence end and a space
        rest = haystack[at + len(NIAH_NEEDLE) :]
        assert rest == "" or rest[0] == " "
        longest = max(len(s) for s in haystack.split(". "))
        assert abs(100 * at / len(haystack) - float(cell.position)) <= 100 * longest / len(haystack) + 1
        assert len(sample.prompt.ids) <= cell.length
        assert len(sample.prompt.ids) >= cell.length - max_tokens(tiny_tokenizer, sentences[:200]) - 2
        assert sample.text.endswith("San Francisco?\nAnswer: The best thing to do in San Francisco is")


def test_lines_asked_line_once(fmt):
    _, cells, built = build_all("lines", [700, 1400], fmt, samples=3)
    for cell in cells:
        sample = built[cell.key]
        asked = re.search(r"in line (\S+)\?", sample.text).group(1)
        assert sample.text.count(f"line {asked}:") == 1
        assert f"line {asked}: REGISTER_CONTENT is <{sample.answer}>" in sample.text
        assert sample.info["num_lines"] == sample.text.count("REGISTER_CONTENT is <")
        assert len(sample.prompt.ids) <= cell.length
    assert built["lines/1400/-/0"].info["num_lines"] > built["lines/700/-/0"].info["num_lines"]


def test_ruler_all_subtasks_fit_and_hold_answers(fmt):
    task, cells, built = build_all("ruler", [2048], fmt, samples=1)
    assert {c.position for c in cells} == set(task.subtasks) and len(task.subtasks) == 11
    for cell in cells:
        sample = built[cell.key]
        assert len(sample.prompt.ids) <= 2048, cell.position
        assert len(sample.prompt.ids) >= 1700, cell.position
        answers = sample.answer
        assert answers and all(a in sample.text for a in answers), cell.position
        if cell.position.startswith("niah"):
            needles = [a for a in answers if sample.text.count(f"is: {a}.") == 1]
            assert needles == answers, cell.position
        if cell.position == "cwe":
            body = sample.text.split("\n\n")[-1]
            counts = {w: len(re.findall(rf"\d+\. {w}(?= |\n)", body)) for w in answers}
            assert set(counts.values()) == {6}  # below 4K tokens RULER repeats common words 6 times
        if cell.position == "fwe":
            words = sample.text.split("coded words. ")[1].split("\nQuestion")[0].split()
            top = sorted(answers, key=words.count, reverse=True)
            others = [w for w in set(words) - set(answers) if w != "..."]
            assert words.count(top[-1]) >= max(map(words.count, others), default=0)
    single = built["ruler/2048/niah_single_1/0"].text
    assert single.startswith("A special magic number is hidden") and single.endswith(
        "mentioned in the provided text is"
    )
    multi = built["ruler/2048/niah_multivalue/0"].text
    assert multi.startswith("Some special magic numbers are hidden") and multi.endswith("provided text are")


def test_ruler_unknown_subtask_is_an_error():
    with pytest.raises(LongwinError, match="unknown RULER task"):
        make_task("ruler", EvalOptions(ruler_tasks=["qa_1"]), 0)


def test_chat_template_wraps_user_turn_and_keeps_answer_prefix(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = (
        "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    fmt = PromptFormatter(tok, chat_template=True)
    parts = Parts("The grass is green. The pass key is 123.", "\nWhat is the pass key?", " The pass key is")
    text, context_end, special = fmt.render(parts)
    assert text == (
        "<|user|>The grass is green. The pass key is 123.\nWhat is the pass key?<|end|><|assistant|>The pass key is"
    )
    assert text[:context_end].endswith("123.") and not special
    prompt = fmt.encode(parts)
    assert tok.decode(prompt.ids[prompt.context_end :]).startswith("\nWhat")
    assert fmt.render(parts, chat=False)[0] == parts.context + parts.question + parts.answer_prefix
    with pytest.raises(LongwinError, match="no chat template"):
        PromptFormatter(tiny_tokenizer, chat_template=True)


def test_prompt_split_marks_where_the_context_ends(fmt, tiny_tokenizer):
    parts = Parts("Some long context here.", "\nThe question?", " Answer:")
    prompt = fmt.encode(parts)
    assert prompt.ids[0] == tiny_tokenizer.bos_token_id
    assert tiny_tokenizer.decode(prompt.ids[prompt.context_end :]) == "\nThe question? Answer:"


def test_haystack_and_corpus_from_a_text_file(tmp_path, fmt, tiny_tokenizer):
    text = tmp_path / "psalm.txt"
    text.write_text(" ".join(f"The Lord is my shepherd number {i}. I shall not want." for i in range(300)))
    _, cells, built = build_all("needle", [600], fmt, samples=1, depths=[50.0], haystack=str(text))
    sample = built[cells[0].key]
    assert "shepherd number" in sample.text and sample.text.count(NIAH_NEEDLE) == 1
    task = make_task("ppl", EvalOptions(corpus=str(text), samples=1, conventions=["chunks"]), 0)
    task.cells([64])
    stream = task._tokens(type("M", (), {"tokenizer": tiny_tokenizer})())
    assert tiny_tokenizer.decode(stream[:40]).startswith("The Lord is my shepherd number 0.")
    with pytest.raises(LongwinError, match="unknown corpus or missing path"):
        build_all("needle", [600], fmt, samples=1, depths=[50.0], haystack=str(tmp_path / "missing.txt"))


def test_kv_short_keys_are_hex_of_the_asked_length_and_uuids_keep_their_fingerprint(fmt):
    task, cells, built = build_all("kv-retrieval", [512], fmt, positions=[0.0, 100.0], samples=1, kv_key_chars=8)
    for sample in built.values():
        assert re.fullmatch(r"[0-9a-f]{8}", sample.answer) and re.fullmatch(r"[0-9a-f]{8}", sample.info["gold_key"])
        assert f'"{sample.info["gold_key"]}": "{sample.answer}"' in sample.text
    assert task.settings["key_chars"] == 8
    assert "key_chars" not in make_task("kv-retrieval", EvalOptions(), 0).settings
