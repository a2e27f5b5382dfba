#!/usr/bin/env bash
# Rerun every committed record that depends on the shipped toy base model, in order, after the toy
# changes (about 70 min on 2 cores). Each step is also listed in its results folder's COMMAND.md.
# Usage: bash experiments/toy_records.sh [STEP...]   steps: card needle induction demo reproduction sharedllm
set -euo pipefail
cd "$(dirname "$0")/.."
R=benchmarks/results
steps=${*:-card needle induction demo reproduction sharedllm}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

for step in $steps; do
  echo "== $step ($(date +%T))"
  case $step in
    card) rm -rf $R/toy_card && bash experiments/toy_card.sh toy $R/toy_card
          printf 'Produced by `bash experiments/toy_card.sh` (%s, %s)\n' "$(date +%F)" "$(python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')" > $R/toy_card/COMMAND.md ;;
    needle) python experiments/toy_needle_probe.py --model toy --out $R/toy_needle_probe ;;
    induction) python experiments/toy_induction_probe.py ;;
    demo) rm -rf out/demo-records $R/demo && mkdir -p $R/demo && longwin demo --out out/demo-records \
            && cp out/demo-records/report.md $R/demo/ && rm -rf $R/demo/compare && cp -r out/demo-records/compare $R/demo/ ;;
    reproduction) python experiments/toy_reproduction.py --work out/toy_reproduction_shipped --scales 8 --seeds 0 --threads 2 ;;
    sharedllm)
      H=out/toy_reproduction_shipped/s8/seed0/heldout.jsonl  # the reproduction step writes it
      S=out/sharedllm-toy-2048-shipped
      [ -f $S/longwin_training.json ] || longwin train --config sharedllm-toy-2048 --output-dir $S --overwrite-output-dir true
      for name in sharedllm truncation sharedllm-no-context; do rm -rf $R/sharedllm_toy_recipe/$name; done
      longwin eval --model $S --task passkey,ppl --lengths 512,1024,2048 --samples 2 --sample-spacing 4096 --corpus $H --out $R/sharedllm_toy_recipe/sharedllm
      longwin eval --model toy --truncate 256 --task passkey,ppl --lengths 512,1024,2048 --samples 2 --sample-spacing 4096 --corpus $H --out $R/sharedllm_toy_recipe/truncation
      longwin eval --model $S --truncate 256 --task ppl --lengths 512,1024,2048 --samples 2 --sample-spacing 4096 --corpus $H --out $R/sharedllm_toy_recipe/sharedllm-no-context
      python experiments/sharedllm_tree_probe.py --model $S --lengths 1024,2048 --samples 2 --threads 2 \
        --out $R/sharedllm_tree_probe ;;
    *) echo "unknown step: $step (card needle induction demo reproduction sharedllm)" >&2; exit 2 ;;
  esac
done
