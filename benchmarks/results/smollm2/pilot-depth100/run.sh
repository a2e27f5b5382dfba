#!/bin/bash
# More samples of the pass key right before the question (depth 100 %) at 2K, inside the base's window:
# 8 a model (the study has 2) for the base and every YaRN setting of the temperature, training-free and CREAM.
# Run from the repository root on idle cores: bash benchmarks/results/smollm2/pilot-depth100/run.sh WORK
# (WORK: the study's work folder, which holds the trained models).
set -ex
WORK=${1:-out/smollm2_study}
HERE=benchmarks/results/smollm2/pilot-depth100
EVAL="--task passkey --lengths 2048 --depths 100 --samples 8 --dtype float32 --attn-implementation sdpa --batch-size 1 --progress false --seed 0"
FREE="--model smollm2-135m --rope yarn --target-length 16384"
python -m longwin eval --model smollm2-135m $EVAL --out $HERE/base
python -m longwin eval $FREE $EVAL --out $HERE/yarn-free
python -m longwin eval $FREE --rope-options attention_factor=1.035 $EVAL --out $HERE/yarn-af1.035-free
python -m longwin eval $FREE --rope-options attention_factor=1.0 $EVAL --out $HERE/yarn-af1-free
for m in cream-yarn-af1.035 cream-yarn-af1; do
  python -m longwin eval --model $WORK/models/$m $EVAL --out $HERE/$m
done
