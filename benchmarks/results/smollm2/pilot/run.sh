set -x
for mode in full lora; do
  extra=""
  [ $mode = lora ] && extra="--lora true --lora-r 16 --lora-alpha 32 --lora-trainable-embeddings true --learning-rate 2e-4"
  /usr/bin/time -v python3 -m longwin train --model smollm2-135m --scheme cream --rope yarn --target-length 16384 \
    --train-length 1024 --data austen+kjv+pydoc+essays --dtype float32 --attn-implementation sdpa \
    --per-device-train-batch-size 1 --max-steps 6 --logging-steps 1 --save-steps 1000 --learning-rate 2e-5 --warmup-steps 0 \
    --use-cpu true --disable-tqdm true --report-to none --output-dir /tmp/pilot/$mode --overwrite-output-dir true $extra
done
