"""Runs PyTorch's FlashAttention-2 (sdpa forced to FLASH_ATTENTION) a few times on one dense
shape, for a profiler to pick a launch (ncu -k regex:flash_fwd --launch-skip 2 --launch-count 1).
  python3 bench/gpu/peer_once.py BATCH SEQLEN HEADS HEADDIM [causal]
"""
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

b, s, h, d = (int(x) for x in sys.argv[1:5])
causal = len(sys.argv) > 5 and sys.argv[5] == "causal"
q, k, v = (torch.rand(b, h, s, d, device="cuda", dtype=torch.bfloat16) + 0.5 for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(5):
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
torch.cuda.synchronize()
print(f"ran sdpa FLASH {b}x{s} h{h} d{d} causal={causal}")
