#!/usr/bin/env bash
# Nsight Compute on the b32 32k decode (issue 13: the kernel's bandwidth against cuDNN's): this engine's
# attention kernel reading a paged cache of 16-row blocks and a contiguous one (kvbench's shapes), and
# cuDNN's decode through PyTorch sdpa on the same keys, full sections, to $OUT/ncu-decode-*.txt. Assumes
# `source .device/node-env.sh`.
#   bench/gpu/profile-decode.sh
set -uo pipefail
out=${OUT:-gpu-out}; mkdir -p "$out"
for shape in bs16 contiguous; do
  timeout 240 ncu --clock-control none --set full -k regex:fwdKernel --launch-skip 40 --launch-count 1 \
    node bench/gpu/kvbench.mjs --only "kv decode b32 32k $shape" --dtype bfloat16 > "$out/ncu-decode-$shape.txt" 2>&1
  echo "ncu ours $shape exit $?"
done
timeout 240 ncu --clock-control none --set full -k 'regex:(?i)(cudnn|sdpa|fmha|flash|attn)' --launch-skip 3 --launch-count 1 \
  python3 - > "$out/ncu-decode-cudnn.txt" 2>&1 <<'PY'
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

q = torch.rand(32, 32, 1, 128, device="cuda", dtype=torch.bfloat16) + 0.5
k, v = (torch.rand(32, 8, 32768, 128, device="cuda", dtype=torch.bfloat16) + 0.5 for _ in range(2))
with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
    for _ in range(6):
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
torch.cuda.synchronize()
print("ran cuDNN sdpa decode b32 32k, 32/8 heads, d128")
PY
echo "ncu cudnn exit $?"
