#!/usr/bin/env bash
# Why does fine-tuning erase the toy's content copying? Train the demo's CREAM recipe (256 -> 2048, YaRN,
# 200 steps) on natural text only, without distillation (as the recipe was before it), with one change at a
# time, then probe every model with experiments/toy_copy_probe.py. Variants are NAME="flags"; a finished
# model is not retrained.
#   bash experiments/toy_extension_variants.sh [NAME ...]      (minutes each on 2 cores)
# Models go to ${WORK:-out/toy_variants}; the probe rows of every finished variant are merged into
# benchmarks/results/toy_copy_probe/variants.json (rows of variants not on this machine are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-out/toy_variants}
THREADS=${THREADS:-2}
declare -A VARIANTS=(
  [natural-lr3e-4]="--learning-rate 3e-4"
  [natural-lr3e-5]="--learning-rate 3e-5"
  [contiguous-lr3e-4]="--learning-rate 3e-4 --scheme none"
  [mlp-lora-lr3e-4]="--learning-rate 3e-4 --lora true --lora-target gate_proj,up_proj,down_proj"
  [demo-mix]="--learning-rate 3e-4 --retrieval-fraction 0.5"
  [induction-lr3e-4]="--learning-rate 3e-4 --induction-weight 1"
  [induction-lr3e-5]="--learning-rate 3e-5 --induction-weight 1"
  [cream-continuity]="--learning-rate 3e-4 --scheme-options p_continuity=1"
  [cream-relativity]="--learning-rate 3e-4 --scheme-options p_continuity=0"
  [pose]="--learning-rate 3e-4 --scheme pose"
  [randpos]="--learning-rate 3e-4 --scheme randpos"
  [native-0.5]="--learning-rate 3e-4 --native-fraction 0.5"
  [native-0.25]="--learning-rate 3e-4 --native-fraction 0.25"
  [replay-copy-0.25]="--learning-rate 3e-4 --retrieval-fraction 0.25 --retrieval-kinds copy"
  [replay-copies-0.25]="--learning-rate 3e-4 --retrieval-fraction 0.25 --retrieval-kinds copy,copy_random"
  [replay-copies-0.5]="--learning-rate 3e-4 --retrieval-fraction 0.5 --retrieval-kinds copy,copy_random"
  [distill-1]="--learning-rate 3e-4 --distill-weight 1"
  [distill-10]="--learning-rate 3e-4 --distill-weight 10"
  [distill-100]="--learning-rate 3e-4 --distill-weight 100"
  [distill-100-lr1e-3]="--learning-rate 1e-3 --distill-weight 100"
  [distill-100-lr1e-4]="--learning-rate 1e-4 --distill-weight 100"
  [distill-100-lr3e-5]="--learning-rate 3e-5 --distill-weight 100"
  [distill-100-lr1e-4-native-0.25]="--learning-rate 1e-4 --distill-weight 100 --native-fraction 0.25"
  [distill-100-native-0.25]="--learning-rate 3e-4 --distill-weight 100 --native-fraction 0.25"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${!VARIANTS[@]}")
for name in "${names[@]}"; do
  folder="$WORK/$name"
  [ -f "$folder/longwin_training.json" ] || OMP_NUM_THREADS=$THREADS longwin train --config cream-toy-2048 \
    --retrieval-fraction 0 --max-steps 200 --save-steps 1000 --disable-tqdm true --output-dir "$folder" \
    --overwrite-output-dir true --distill-weight 0 ${VARIANTS[$name]}
done
specs=(--model toy --model toy:yarn:2048)
for name in "${!VARIANTS[@]}"; do  # every finished variant, so the table always holds them all
  [ -f "$WORK/$name/longwin_training.json" ] && specs+=(--model "$WORK/$name")
done
RECORD=benchmarks/results/toy_copy_probe/variants.json
python3 experiments/toy_copy_probe.py "${specs[@]}" --threads "$THREADS" --out "$WORK/probe.json"
python3 - "$RECORD" "$WORK/probe.json" <<'EOF'
import json, sys
record, probe = sys.argv[1], json.load(open(sys.argv[2]))
try:
    merged = json.load(open(record))
except FileNotFoundError:
    merged = {k: probe[k] for k in ("span", "rows", "seed")} | {"commands": [], "results": {}}
assert all(merged[k] == probe[k] for k in ("span", "rows", "seed")), "probe settings differ from the record"
merged["commands"].append(probe["command"])
merged["results"].update(probe["results"])
open(record, "w").write(json.dumps(merged, indent=2) + "\n")
EOF
