"""LongBench v1 (and LongBench-E) on JSONL files the user brings (docs/evaluation-tasks.md#longbench).

`--data-dir` holds `<task>.jsonl` (or `<task>_e.jsonl`) files in the official format (`input`,
`context`, `answers`, `all_classes`, `length`, `_id`). Prompts, generation lengths, metrics and the
completion-style tasks (no chat template, first output line scored) follow the official
configuration; a prompt longer than the cell's length keeps its first and last halves of tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.eval.metrics import (
    classification_score,
    code_sim,
    count_score,
    qa_f1,
    qa_f1_zh,
    retrieval_score,
    retrieval_score_zh,
    rouge_l,
    rouge_l_zh,
)
from longwin.eval.plots import save_lines
from longwin.eval.prompting import Parts, PromptFormatter
from longwin.eval.tasks.base import Cell, GenerationTask, Sample, average_series, means_by_length, pct

_QA = (
    "Answer the question based on the given passages. Only give me the answer and do not output any other "
    "words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. "
    "Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:"
)
_QASPER_RULE = (
    "as concisely as you can, using a single phrase or sentence if possible. If the question cannot be "
    'answered based on the information in the article, write "unanswerable". If the question is a '
    'yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.'
)

PROMPTS: dict[str, str] = {
    "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. Answer the "
    "question as concisely as you can, using a single phrase if possible. Do not provide any "
    "explanation.\n\nStory: {context}\n\nNow, answer the question based on the story as concisely as "
    "you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}"
    "\n\nAnswer:",
    "qasper": "You are given a scientific article and a question. Answer the question "
    + _QASPER_RULE
    + "\n\nArticle: {context}\n\n Answer the question based on the above article "
    + _QASPER_RULE
    + "\n\nQuestion: {input}\n\nAnswer:",
    "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question "
    "based on the above text, only give me the answer and do not output any other words.\n\n"
    "Question: {input}\nAnswer:",
    "multifieldqa_zh": "阅读以下文字并用中文简短回答：\n\n{context}\n\n"
    "现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。"
    "\n\n问题：{input}\n回答：",
    "hotpotqa": _QA,
    "2wikimqa": _QA,
    "musique": _QA,
    "dureader": "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n"
    "请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
    "gov_report": "You are given a report by a government agency. Write a one-page summary of the report.\n\n"
    "Report:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
    "qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer the query "
    "in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting "
    "transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
    "multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\n"
    "Now, write a one-page summary of all the news.\n\nSummary:",
    "vcsum": "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",
    "trec": "Please determine the type of the question below. Here are some examples of questions."
    "\n\n{context}\n{input}",
    "triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output any other "
    "words. The following are some examples.\n\n{context}\n\n{input}",
    "samsum": "Summarize the dialogue into a few short sentences. The following are some examples."
    "\n\n{context}\n\n{input}",
    "lsht": "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
    "passage_count": "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please "
    "carefully read these paragraphs and determine how many unique paragraphs there are after "
    "removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n"
    "{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The "
    "output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",
    "passage_retrieval_en": "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which "
    "paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\n"
    "Please enter the number of the paragraph that the abstract is from. The answer format must "
    'be like "Paragraph 1", "Paragraph 2", etc.\n\nThe answer is: ',
    "passage_retrieval_zh": "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n"
    "下面是一个摘要\n\n{input}\n\n"
    '请输入摘要所属段落的编号。答案格式必须是"段落1"，"段落2"等格式\n\n答案是：',
    "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
}

MAX_NEW_TOKENS: dict[str, int] = {
    "narrativeqa": 128,
    "qasper": 128,
    "multifieldqa_en": 64,
    "multifieldqa_zh": 64,
    "hotpotqa": 32,
    "2wikimqa": 32,
    "musique": 32,
    "dureader": 128,
    "gov_report": 512,
    "qmsum": 512,
    "multi_news": 512,
    "vcsum": 512,
    "trec": 64,
    "triviaqa": 32,
    "samsum": 128,
    "lsht": 64,
    "passage_count": 32,
    "passage_retrieval_en": 32,
    "passage_retrieval_zh": 32,
    "lcc": 64,
    "repobench-p": 64,
}

Metric = Callable[[str, str, Sequence[str]], float]
METRICS: dict[str, Metric] = {
    **{
        t: lambda p, g, c: qa_f1(p, g)
        for t in ("narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "musique", "triviaqa")
    },
    "multifieldqa_zh": lambda p, g, c: qa_f1_zh(p, g),
    **{t: lambda p, g, c: rouge_l(p, g) for t in ("gov_report", "qmsum", "multi_news", "samsum")},
    **{t: lambda p, g, c: rouge_l_zh(p, g) for t in ("dureader", "vcsum")},
    "trec": classification_score,
    "lsht": classification_score,
    "passage_count": lambda p, g, c: count_score(p, g),
    "passage_retrieval_en": lambda p, g, c: retrieval_score(p, g),
    "passage_retrieval_zh": lambda p, g, c: retrieval_score_zh(p, g),
    "lcc": lambda p, g, c: code_sim(p, g),
    "repobench-p": lambda p, g, c: code_sim(p, g),
}

CATEGORIES: dict[str, tuple[str, ...]] = {
    "single-doc QA": ("narrativeqa", "qasper", "multifieldqa_en", "multifieldqa_zh"),
    "multi-doc QA": ("hotpotqa", "2wikimqa", "musique", "dureader"),
    "summarization": ("gov_report", "qmsum", "multi_news", "vcsum"),
    "few-shot": ("trec", "triviaqa", "samsum", "lsht"),
    "synthetic": ("passage_count", "passage_retrieval_en", "passage_retrieval_zh"),
    "code": ("lcc", "repobench-p"),
}
# completion-style tasks: no chat template, only the first output line is scored
COMPLETION = ("trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p")
BUCKETS = ((0, 4000, "0-4k"), (4000, 8000, "4-8k"), (8000, float("inf"), "8k+"))


def base_name(dataset: str) -> str:
    """LongBench-E files are `<task>_e`; prompts and metrics are those of `<task>`."""
    return dataset[:-2] if dataset.endswith("_e") and dataset[:-2] in PROMPTS else dataset


def score_prediction(dataset: str, prediction: str, answers: Sequence[str], all_classes: Sequence[str]) -> float:
    """The official per-item score: best over the gold answers."""
    task = base_name(dataset)
    if task in ("trec", "triviaqa", "samsum", "lsht"):
        prediction = prediction.lstrip("\n").split("\n")[0]
    return max((METRICS[task](prediction, gold, all_classes or []) for gold in answers), default=0.0)


def bucket(length: Any) -> str | None:
    if not isinstance(length, (int, float)):
        return None
    return next(name for lo, hi, name in BUCKETS if lo <= length < hi)


def read_items(path: Path) -> list[dict[str, Any]]:
    items = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                raise LongwinError(f"{path}:{number}: not valid JSON") from None
            missing = [k for k in ("context", "input", "answers") if k not in item]
            if missing:
                raise LongwinError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            items.append(item)
    return items


class LongBenchTask(GenerationTask):
    name = "longbench"
    default_samples = 0  # every item

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        if not options.data_dir:
            raise LongwinError("longbench needs --data-dir, a folder of LongBench JSONL files (<task>.jsonl)")
        self.data_dir = Path(options.data_dir).expanduser()
        if not self.data_dir.is_dir():
            raise LongwinError(f"LongBench data folder not found: {self.data_dir}")
        self.datasets = self._datasets(options.longbench_tasks)
        self.items = {d: read_items(self.data_dir / f"{d}.jsonl") for d in self.datasets}
        self.new_tokens = {d: options.max_new_tokens or MAX_NEW_TOKENS[base_name(d)] for d in self.datasets}
        self.max_new_tokens = max(self.new_tokens.values())
        self.settings.update(
            data_dir=str(self.data_dir.resolve()),
            datasets=self.datasets,
            new_tokens=self.new_tokens,
            max_new_tokens=self.max_new_tokens,
        )

    def _datasets(self, requested: Sequence[str]) -> list[str]:
        if requested:
            for name in requested:
                if base_name(name) not in PROMPTS:
                    raise LongwinError(f"unknown LongBench task {name!r} (known: {', '.join(PROMPTS)})")
                if not (self.data_dir / f"{name}.jsonl").is_file():
                    raise LongwinError(f"LongBench file missing: {self.data_dir / (name + '.jsonl')}")
            return list(dict.fromkeys(requested))
        found = sorted(p.stem for p in self.data_dir.glob("*.jsonl") if base_name(p.stem) in PROMPTS)
        if not found:
            raise LongwinError(f"no LongBench task files (e.g. hotpotqa.jsonl) in {self.data_dir}")
        return found

    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        return [
            Cell(self.name, n, d, i)
            for n in lengths
            for d in self.datasets
            for i in range(len(self.items[d]) if not self.samples else min(self.samples, len(self.items[d])))
        ]

    def _parts(self, dataset: str, item: dict[str, Any], context: str) -> Parts:
        template = PROMPTS[base_name(dataset)]
        head, tail = template.split("{context}")
        return Parts(head.format(input=item["input"]) + context, tail.format(input=item["input"]))

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        item = self.items[cell.position][cell.sample]
        chat = base_name(cell.position) not in COMPLETION
        parts = self._parts(cell.position, item, item["context"])
        excess = fmt.count(parts, chat=chat) - cell.length
        truncated = excess > 0
        while excess > 0:  # drop the middle of the whole prompt, as LongBench does, until it fits
            parts = self._truncate_middle(parts, fmt, excess)
            excess = fmt.count(parts, chat=chat) - cell.length
        return Sample(
            fmt.encode(parts, chat=chat),
            fmt.render(parts, chat=chat)[0],
            item["answers"],
            self.new_tokens[cell.position],
            {
                "dataset": cell.position,
                "id": item.get("_id", cell.sample),
                "truncated": truncated,
                "all_classes": item.get("all_classes") or [],
                "bucket": bucket(item.get("length")),
            },
        )

    @staticmethod
    def _truncate_middle(parts: Parts, fmt: PromptFormatter, excess: int) -> Parts:
        tok = fmt.tokenizer
        text = parts.context + parts.question
        ids = tok(text, add_special_tokens=False)["input_ids"]
        keep = len(ids) - excess
        if keep <= 0:
            raise LongwinError("a length is too short for LongBench: even the prompt template does not fit")
        head = tok.decode(ids[: keep // 2 + keep % 2], skip_special_tokens=True)
        tail = tok.decode(ids[len(ids) - keep // 2 :], skip_special_tokens=True) if keep // 2 else ""
        joined = head + tail
        # the question usually survives (it is at the end): keep the context/question split then
        if parts.question and joined.endswith(parts.question):
            return Parts(joined[: -len(parts.question)], parts.question)
        return Parts(joined)

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        return {"score": score_prediction(sample.info["dataset"], output, sample.answer, sample.info["all_classes"])}

    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        datasets = [d for d in self.datasets if any(r["position"] == d for r in rows)]
        raw = {d: means_by_length([r for r in rows if r["position"] == d]) for d in datasets}
        categories = {}
        for cat, members in CATEGORIES.items():
            present = [raw[d] for d in datasets if base_name(d) in members]
            if present:
                categories[cat] = average_series(present)
        buckets = {
            d: {
                name: pct(r["score"] for r in rows if r["position"] == d and r["bucket"] == name)
                for _, _, name in BUCKETS
                if any(r["position"] == d and r["bucket"] == name for r in rows)
            }
            for d in datasets
        }
        return {
            "metric": "LongBench score (x100)",
            "higher_is_better": True,
            "series": {
                "average": average_series(list(raw.values())),
                **{d: {n: round(v, 2) for n, v in raw[d].items()} for d in datasets},
            },
            "categories": categories,
            "by_bucket": {d: b for d, b in buckets.items() if b},
        }

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        save_lines(
            out_dir / "longbench_scores.png",
            summary["series"],
            title="LongBench",
            bold="average",
            xlabel="Truncation length (tokens)",
            ylabel="Score (x100)",
            vline=window,
        )
        return ["longbench_scores.png"]
