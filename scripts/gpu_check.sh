#!/usr/bin/env bash
# One prepared script for a machine with a CUDA GPU (about 5 minutes):
#   1. the GPU parity tests (CUDA vs the NumPy witness, CUDA vs CPU training, Lightning on gpu);
#   2. 100 epochs of the reference run with --no-shuffle on cuda and on cpu from the same
#      initial weights, weights compared (<= 1e-4);
#   3. the quick benchmark with --accelerator gpu.
# Needs a CUDA build of torch in $PY's environment (the Makefile installs the CPU wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d)}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA: torch {torch.__version__} sees no GPU; install a CUDA build of torch first")
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
PY

echo "== 1. GPU parity tests"
"$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_predict.py

echo "== 2. 100 epochs, --no-shuffle, cuda vs cpu from the same init"
"$PY" -c "
import numpy as np, torch
from torch_rnnsin.lesson.model import SinRNN
from torch_rnnsin.lesson.convert import torch_to_keras
torch.manual_seed(0)
np.savez('$OUT/init.npz', *torch_to_keras(SinRNN(1)))"
for acc in gpu cpu; do
  /usr/bin/env time -f "$acc: %e s" "$PY" train.py --epochs 100 --no-shuffle \
    --init-keras "$OUT/init.npz" --accelerator $acc --out "$OUT/$acc" | tail -3
done
"$PY" -c "
import numpy as np
from torch_rnnsin.lesson.convert import load_keras_weights
a = load_keras_weights('$OUT/gpu/keras_weights.npz'); b = load_keras_weights('$OUT/cpu/keras_weights.npz')
d = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
print(f'max |cuda - cpu| weight difference after 100 epochs: {d:.2e}')
assert d <= 1e-4, d"

echo "== 3. benchmark on cuda"
"$PY" -m bench --quick --accelerator gpu --no-keras --results "$OUT/results-gpu.md"
echo "results in $OUT"
