#!/usr/bin/env bash
# The quality gate, then the tests: ruff lint, ruff format check, mypy (settings in pyproject.toml),
# then pytest with any arguments given (e.g. `bash scripts/check.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
paths=(src tests experiments benchmarks scripts)
$py -m ruff check "${paths[@]}"
$py -m ruff format --check "${paths[@]}"
$py -m mypy
$py -m pytest "$@"
