"""Scoring functions, each returning a value in [0, 1], implemented here so nothing needs a download.

Definitions follow the benchmarks (docs/evaluation-tasks.md#metrics): first-integer match (passkey, lines),
substring match (Lost-in-the-Middle KV), RULER's string_match_all/part, LongBench's QA F1 with SQuAD
normalisation, classification, retrieval, count and code edit similarity. ROUGE-L is the LCS
F-measure on `rouge_score`'s default tokens (lower-cased alphanumeric runs, no stemming); LongBench
used the `rouge` package, whose tokenisation differs slightly. Chinese variants tokenise by
character where LongBench used jieba.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

_INT = re.compile(r"\d+")
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ZH_PUNCT = set(
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～"
    "｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
)


def first_int(text: str) -> int | None:
    match = _INT.search(text)
    return int(match.group()) if match else None


def exact_int_match(output: str, gold: int) -> float:
    """1 if the first integer in the output is the gold number (passkey, LongChat-Lines)."""
    return float(first_int(output) == gold)


def substring_match(output: str, gold: str) -> float:
    """1 if the gold string occurs in the output, ignoring case (Lost-in-the-Middle KV)."""
    return float(gold.lower() in output.lower())


def _ruler_clean(output: str) -> str:
    """RULER strips the prediction and turns control characters into newlines before matching."""
    return "".join("\n" if unicodedata.category(c) == "Cc" else c for c in output.strip())


def string_match_all(output: str, golds: Sequence[str]) -> float:
    """Fraction of gold strings found in the output, ignoring case (RULER niah/vt/cwe/fwe)."""
    text = _ruler_clean(output).lower()
    return sum(g.lower() in text for g in golds) / len(golds) if golds else 0.0


def string_match_part(output: str, golds: Sequence[str]) -> float:
    """1 if any gold string is in the output, ignoring case (RULER qa)."""
    text = _ruler_clean(output).lower()
    return float(any(g.lower() in text for g in golds))


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_tokens(text: str) -> list[str]:
    return _ROUGE_TOKEN.findall(text.lower())


def _f1(overlap: float, n_pred: int, n_gold: int) -> float:
    if overlap == 0 or n_pred == 0 or n_gold == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_gold
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure between two texts."""
    pred, ref = rouge_tokens(prediction), rouge_tokens(reference)
    return _f1(lcs_length(pred, ref), len(pred), len(ref))


def _zh_chars(text: str) -> list[str]:
    return [c for c in text.lower() if not c.isspace() and c not in string.punctuation and c not in _ZH_PUNCT]


def rouge_l_zh(prediction: str, reference: str) -> float:
    """ROUGE-L F on characters (LongBench used jieba words)."""
    pred, ref = _zh_chars(prediction), _zh_chars(reference)
    return _f1(lcs_length(pred, ref), len(pred), len(ref))


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def qa_f1(prediction: str, gold: str) -> float:
    """Token-level F1 after SQuAD normalisation (LongBench / InfiniteBench QA)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    return _f1(sum((Counter(pred) & Counter(ref)).values()), len(pred), len(ref))


def qa_f1_zh(prediction: str, gold: str) -> float:
    """F1 over characters after dropping punctuation and whitespace."""
    pred, ref = _zh_chars(prediction), _zh_chars(gold)
    return _f1(sum((Counter(pred) & Counter(ref)).values()), len(pred), len(ref))


def classification_score(prediction: str, gold: str, all_classes: Sequence[str]) -> float:
    """LongBench classification: class names found in the output, ignoring those that are only a
    part of the gold name; 1/len(matches) when the gold class is among them."""
    matches = [c for c in all_classes if c in prediction]
    matches = [c for c in matches if not (c in gold and c != gold)]
    return 1.0 / len(matches) if gold in matches else 0.0


def _share_equal(numbers: list[str], gold: str) -> float:
    return sum(n == gold for n in numbers) / len(numbers) if numbers else 0.0


def retrieval_score(prediction: str, gold: str, *, pattern: str = r"Paragraph (\d+)") -> float:
    """LongBench passage retrieval: share of the numbers in the output that are the gold paragraph."""
    found = re.findall(pattern, gold)
    return _share_equal(_INT.findall(prediction), found[0]) if found else 0.0


def retrieval_score_zh(prediction: str, gold: str) -> float:
    return retrieval_score(prediction, gold, pattern=r"段落(\d+)")


def count_score(prediction: str, gold: str) -> float:
    """LongBench passage count: share of the numbers in the output equal to the gold count."""
    return _share_equal(_INT.findall(prediction), str(gold).strip())


def edit_similarity(a: str, b: str) -> int:
    """fuzzywuzzy/rapidfuzz `fuzz.ratio`: 100 * 2*LCS / (len a + len b), rounded; 0 if one is empty."""
    if not a or not b:
        return 0
    return int(round(100 * 2 * lcs_length(a, b) / (len(a) + len(b))))


def code_sim(prediction: str, gold: str) -> float:
    """LongBench code edit similarity on the first output line that is not a fence or a comment."""
    lines = prediction.lstrip("\n").split("\n")
    line = next((ln for ln in lines if "`" not in ln and "#" not in ln and "//" not in ln), "")
    return edit_similarity(line, gold) / 100


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a proportion, in percent: honest at the few samples a CPU
    affords, where the normal approximation gives intervals outside [0, 100]."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (100 * max(0.0, centre - half), 100 * min(1.0, centre + half))
