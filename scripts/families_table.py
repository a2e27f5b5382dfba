"""Print (or, with --write, put into README.md) the Markdown table of the model families longwin supports.

The table comes from `longwin.models.families`, whose every claim `tests/test_families.py` checks on tiny
random models; a test fails while the README's block between the markers differs from this output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from longwin.models.families import FAMILIES, FEATURES

START, END = "<!-- families:start -->", "<!-- families:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def table() -> str:
    """The Markdown table: one row per family, one column per feature ("yes", or "no: " and the reason)."""
    head = ["Family", "transformers class", "logits", *FEATURES.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for family in FAMILIES:
        cells = [f"no: {reason}" if (reason := family.refusal(f)) else "yes" for f in FEATURES]
        lines.append("| " + " | ".join([family.name, f"`{family.model_class}`", family.logits, *cells]) + " |")
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """`text` with everything between the START and END markers replaced by `block`."""
    before, found, rest = text.partition(START)
    _, found_end, after = rest.partition(END)
    if not found or not found_end:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    return f"{before}{START}\n{block}\n{END}{after}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README block instead of printing")
    if parser.parse_args().write:
        README.write_text(replace_block(README.read_text(), table()))
    else:
        print(table())


if __name__ == "__main__":
    main()
