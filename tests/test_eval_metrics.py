"""Scoring functions: known inputs give known scores; ROUGE-L agrees with the rouge_score package."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longwin.eval import metrics as m
from longwin.eval.tasks.longbench import score_prediction


def test_first_int_and_exact_int_match():
    assert m.first_int("The pass key is 12345. Remember 678.") == 12345
    assert m.first_int("no digits") is None
    assert m.exact_int_match(" 42917 is it", 42917) == 1.0
    assert m.exact_int_match("I think 4291 7", 42917) == 0.0
    assert m.exact_int_match("", 1) == 0.0


def test_substring_and_ruler_string_match():
    assert m.substring_match('value: "ABC-def"', "abc-DEF") == 1.0
    assert m.substring_match("abc", "abcd") == 0.0
    assert m.string_match_all("A: 123 and 456", ["123", "456", "789"]) == pytest.approx(2 / 3)
    assert m.string_match_all("anything", []) == 0.0
    assert m.string_match_all("  KEY-one\x00key-TWO ", ["key-one", "key-two"]) == 1.0
    assert m.string_match_part("the answer is paris", ["London", "Paris"]) == 1.0
    assert m.string_match_part("the answer is rome", ["London", "Paris"]) == 0.0


def test_rouge_l_known_value():
    # LCS of "the cat sat on the mat" / "the cat is on the mat" is "the cat on the mat" (5 tokens)
    assert m.rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    assert m.rouge_l("", "reference") == 0.0
    assert m.rouge_l("Dolores Park, on a SUNNY day", "dolores park on a sunny day") == 1.0


_WORDS = st.lists(st.sampled_from(["the", "cat", "sat", "on", "mat", "Dog", "a", "7", "sun,"]), max_size=12)


@settings(max_examples=60, deadline=None)
@given(_WORDS, _WORDS)
def test_rouge_l_matches_rouge_score_package(pred, ref):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(" ".join(ref), " ".join(pred))["rougeL"].fmeasure
    assert m.rouge_l(" ".join(pred), " ".join(ref)) == pytest.approx(expected)


@given(st.text(alphabet="abcd", max_size=15), st.text(alphabet="abcd", max_size=15))
def test_lcs_properties(a, b):
    n = m.lcs_length(a, b)
    assert n == m.lcs_length(b, a)
    assert n <= min(len(a), len(b))
    assert m.lcs_length(a, a) == len(a)


def test_squad_normalisation_and_qa_f1():
    assert m.normalize_answer("The  Quick, brown fox.") == "quick brown fox"
    assert m.qa_f1("The Eiffel Tower!", "eiffel tower") == 1.0
    assert m.qa_f1("in Paris France", "Paris") == pytest.approx(0.5)  # P = 1/3, R = 1
    assert m.qa_f1("London", "Paris") == 0.0
    assert m.qa_f1("the", "a") == 0.0  # only articles: nothing left to match
    assert m.qa_f1_zh("北京。", "北京") == 1.0
    assert m.rouge_l_zh("今天天气很好", "今天天气不错") == pytest.approx(4 / 6)


def test_classification_score():
    classes = ["city", "capital city", "country"]
    assert m.classification_score("capital city", "capital city", classes) == 1.0  # "city" is part of the gold
    assert m.classification_score("city or country", "city", classes) == 0.5
    assert m.classification_score("country", "city", classes) == 0.0


def test_retrieval_and_count_scores():
    assert m.retrieval_score("Paragraph 3", "Paragraph 3") == 1.0
    assert m.retrieval_score("Paragraph 3 or Paragraph 4", "Paragraph 3") == 0.5
    assert m.retrieval_score("I do not know", "Paragraph 3") == 0.0
    assert m.retrieval_score_zh("段落2", "段落2") == 1.0
    assert m.count_score("There are 5 unique, not 6", "5") == 0.5
    assert m.count_score("five", "5") == 0.0


def test_code_similarity():
    assert m.edit_similarity("abcd", "abce") == 75  # 2 * 3 / 8
    assert m.edit_similarity("", "x") == 0
    assert m.code_sim("```python\n# set x\nx = foo(1)\n```", "x = foo(1)") == 1.0
    assert m.code_sim("\n\nreturn a + b", "return a + c") == pytest.approx(round(100 * 22 / 24) / 100)


def test_longbench_scores_first_line_and_best_answer():
    classes = ["Location", "Individual"]
    # trec is scored on the first output line only
    assert score_prediction("trec", "Location\nIndividual", ["Location"], classes) == 1.0
    assert score_prediction("hotpotqa", "Location\nIndividual", ["Location"], []) == pytest.approx(2 / 3)
    # the best gold answer counts; LongBench-E files share the metric of their task
    assert score_prediction("hotpotqa_e", "Paris", ["London", "Paris"], []) == 1.0
    assert score_prediction("passage_count", "3", ["3"], []) == 1.0


def test_wilson_interval_known_values_and_bounds():
    from longwin.eval.metrics import wilson

    assert wilson(0, 10) == pytest.approx((0.0, 27.75), abs=0.01)
    assert wilson(10, 10) == pytest.approx((72.25, 100.0), abs=0.01)
    low, high = wilson(6, 10)
    assert low == pytest.approx(31.27, abs=0.01) and high == pytest.approx(83.18, abs=0.01)
    assert all(0 <= x <= 100 for k in range(11) for x in wilson(k, 10))
