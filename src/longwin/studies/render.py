"""A study's report: its prose lives in a Markdown template beside the study, with `{name}` fields that the
study's tables and verdicts fill, so the code holds no prose and the prose no figures."""

from __future__ import annotations

from pathlib import Path


def fill(template: Path, **values: object) -> str:
    """The template with every `{name}` (and `{name:spec}`) field filled; a field without a value is an error."""
    return template.read_text().format(**values)
