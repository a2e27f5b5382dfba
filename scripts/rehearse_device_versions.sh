#!/usr/bin/env bash
# The GPU machine runs transformers 5.17.0 and accelerate 1.15.0 (torch as it is): rehearse the GPU tests
# under those versions here, so an incompatibility is found on the CPU and not in the device's few minutes.
# A venv over the system packages gets only those two pins; the main environment is left as it is.
#   bash scripts/rehearse_device_versions.sh [VENV_DIR] [extra pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/lw-device-venv}
shift || true
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    $py -m venv --system-site-packages "$venv"
fi
# pip adds only what these two need and the system lacks (5.17 imports httpx; it pins its huggingface-hub);
# torch and the rest stay the system's
"$venv/bin/python" -m pip install --quiet transformers==5.17.0 accelerate==1.15.0
"$venv/bin/python" -c "import torch, transformers, accelerate; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"
tests=()
for file in tests/test_gpu_ready.py tests/test_families.py tests/test_chunked_loss.py tests/test_training.py \
    tests/test_preflight.py tests/test_training_distributed.py tests/test_training_fsdp.py \
    tests/test_gpu_rehearsals.py tests/test_gpu_plan.py; do
    if [ -f "$file" ]; then tests+=("$file"); else echo "skipped (absent): $file"; fi
done
# the venv's python first on PATH, so the tests' subprocesses (sys.executable, torchrun) run under it too
PATH="$venv/bin:$PATH" PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" "$@"
