#!/usr/bin/env bash
# Reproduce the toy base model card's figures (docs/toy-model.md):
#   passkey and needle-in-a-haystack accuracy inside the 256-token window and beyond it, no extension.
# Usage: bash experiments/toy_card.sh [MODEL] [OUT]   (MODEL defaults to the packaged `toy`)
set -euo pipefail
model=${1:-toy}
out=${2:-benchmarks/results/toy_card}
longwin eval --model "$model" --task passkey,needle --lengths 128,192,256,512,1024,2048 --samples 10 --seed 0 --out "$out"
