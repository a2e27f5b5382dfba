#!/bin/bash
# Pilot: does 4x the study's training budget move CREAM's pass keys at the 16K edges (depths 0 and 100 %)?
# cream-yarn-af1's recipe (smollm2-135m-16k-cpu, CREAM, YaRN without its temperature) for 400 steps instead
# of 100 (0.4M tokens), then passkey by depth at 2K and 16K and perplexity as in the study.
# Run from the repository root on idle cores: bash benchmarks/results/smollm2/pilot-budget/run.sh WORK
set -ex
WORK=${1:-out/smollm2_study}
HERE=benchmarks/results/smollm2/pilot-budget
MODEL=$WORK/models/cream-yarn-af1-400
[ -f $MODEL/longwin_training.json ] || python -m longwin train --config smollm2-135m-16k-cpu --scheme cream --rope yarn \
  --rope-options attention_factor=1.0 --max-steps 400 --output-dir $MODEL --overwrite-output-dir true
COMMON="--dtype float32 --attn-implementation sdpa --batch-size 1 --progress false --seed 0"
python -m longwin eval --model $MODEL --task passkey --samples 2 --depths 0,25,50,75,100 --lengths 2048,16384 $COMMON --out $HERE/passkey
# --sample-spacing 16384 (added 2026-12-07): the samples sit where the records' do, one document each
python -m longwin eval --model $MODEL --task ppl --corpus $WORK/heldout-ppl.jsonl --conventions last-k --last-k 1024 \
  --samples 4 --sample-spacing 16384 --lengths 2048,8192,16384 $COMMON --out $HERE/ppl
