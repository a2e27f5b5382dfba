"""Compare two runs of an experiment cell by cell: does a rerun reproduce the recorded numbers?

Walks every results.json under RECORDED, finds the same file under RERUN, and compares each numeric
value (accuracies, perplexities, counts; the nested keys as paths). Files only in RECORDED are
reported as not rerun, so a partial rerun (one seed, one scale) checks what it covers.

    python experiments/check_rerun.py out/toy_reproduction /tmp/rerun
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, float(node)


def compare(recorded: Path, rerun: Path) -> dict[str, Any]:
    files, values, missing, differing = 0, 0, 0, []
    for old in sorted(recorded.rglob("results.json")):
        rel = old.relative_to(recorded)
        new = rerun / rel
        if not new.is_file():
            missing += 1
            continue
        files += 1
        theirs = dict(leaves(json.loads(new.read_text())))
        for key, value in leaves(json.loads(old.read_text())):
            values += 1
            other = theirs.get(key)
            if other is None or not math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-9):
                differing.append({"file": str(rel), "key": key, "recorded": value, "rerun": other})
    return {"files_compared": files, "values_compared": values, "not_rerun": missing, "differing": differing}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recorded", type=Path)
    parser.add_argument("rerun", type=Path)
    args = parser.parse_args()
    report = compare(args.recorded, args.rerun)
    for row in report["differing"][:20]:
        print(f"differs: {row['file']} {row['key']}: {row['recorded']} vs {row['rerun']}")
    print(
        f"{report['files_compared']} result files and {report['values_compared']} values compared, "
        f"{len(report['differing'])} differ; {report['not_rerun']} recorded files not in the rerun"
    )
    return 1 if report["differing"] or not report["files_compared"] else 0


if __name__ == "__main__":
    sys.exit(main())
