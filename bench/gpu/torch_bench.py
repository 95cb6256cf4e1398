#!/usr/bin/env python3
"""Times PyTorch's attention peers on the shapes of bench/gpu/shapes.mjs (read as JSON on stdin):
SDPA forced to FLASH_ATTENTION (FlashAttention-2) and CUDNN_ATTENTION, and
torch.nn.attention.varlen.varlen_attn (FlashAttention-2 varlen, bottom-right causal), each with
triton.testing.do_bench median. Writes JSON lines (one per impl and shape) to stdout.

    node bench/gpu/shapes.mjs --json | python3 bench/gpu/torch_bench.py > torch.jsonl
TORCH_SKIP_CUDNN=1 leaves cuDNN out (shorter A/B runs).
"""
import inspect
import json
import os
import sys

import torch
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # older torch
    varlen_attn = None

F = torch.nn.functional
DT = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def bench(fn):
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def call_times(fn, n=30, inflight=20):
    """The call as a user sees it, wall clock: awaited (fn then synchronize, back to back; median)
    and `inflight` calls issued then one synchronize (per call)."""
    import time
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    t0 = time.perf_counter()
    for _ in range(inflight):
        fn()
    torch.cuda.synchronize()
    return ts[len(ts) // 2], (time.perf_counter() - t0) * 1e3 / inflight


def rand(shape, dtype):
    return (torch.rand(shape, device="cuda", dtype=torch.float32) - 0.5).to(dtype)


def varlen_call(q, k, v, cq, ck, mq, mk, causal):
    params = inspect.signature(varlen_attn).parameters
    if "window_size" in params:
        return lambda: varlen_attn(q, k, v, cq, ck, mq, mk, window_size=(-1, 0) if causal else (-1, -1))
    return lambda: varlen_attn(q, k, v, cq, ck, mq, mk, is_causal=causal)


def run(s):
    dt = DT[s["dtype"]]
    H, Hk, D = s["numHeads"], s["numKvHeads"], s["headDim"]
    lq, lk = s["seqlensQ"], s["seqlensK"]
    tq, tk = sum(lq), sum(lk)
    rows = []

    def emit(impl, fn):
        try:
            ms = bench(fn)
            awaited, inflight = call_times(fn)
            rows.append({"impl": impl, "shape": s["name"], "dtype": s["dtype"], "kind": s["kind"], "ms": ms,
                         "tflops": s["flops"] / (ms * 1e9), "gbps": s["kvBytes"] / (ms * 1e6),
                         "callMs": awaited, "inflightMs": inflight})
        except Exception as e:  # a peer that cannot run a shape says so in the table
            rows.append({"impl": impl, "shape": s["name"], "dtype": s["dtype"], "kind": s["kind"], "ms": None,
                         "error": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"})
        torch.cuda.empty_cache()

    # Packed layout for varlen_attn: [total, heads, dim].
    qp, kp, vp = rand((tq, H, D), dt), rand((tk, Hk, D), dt), rand((tk, Hk, D), dt)
    cq = torch.tensor([0] + list(torch.tensor(lq).cumsum(0).tolist()), device="cuda", dtype=torch.int32)
    ck = torch.tensor([0] + list(torch.tensor(lk).cumsum(0).tolist()), device="cuda", dtype=torch.int32)
    if varlen_attn is not None:
        emit("FA2 varlen_attn", varlen_call(qp, kp, vp, cq, ck, max(lq), max(lk), s["causal"]))

    if len(set(lq)) == 1 and len(set(lk)) == 1:
        B, Sq, Sk = len(lq), lq[0], lk[0]
        # [B, S, H, D] storage viewed as [B, H, S, D], FlashAttention's native layout.
        q = qp.view(B, Sq, H, D).transpose(1, 2)
        k = kp.view(B, Sk, Hk, D).transpose(1, 2)
        v = vp.view(B, Sk, Hk, D).transpose(1, 2)
        gqa = H != Hk
        backends = [("FA2 sdpa", SDPBackend.FLASH_ATTENTION), ("cuDNN sdpa", SDPBackend.CUDNN_ATTENTION)]
        if os.environ.get("TORCH_SKIP_CUDNN"):  # short A/B runs: FA2 is the bar
            backends = backends[:1]
        for name, backend in backends:
            def fn(backend=backend):
                with sdpa_kernel(backend):
                    if not s["causal"]:
                        return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
                    if Sq == Sk:
                        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
                    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(Sq, Sk), enable_gqa=gqa)
            emit(name, fn)
    del qp, kp, vp
    return rows


def copy_bandwidth():
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() / (ms * 1e6)


def main():
    shapes = json.load(sys.stdin)
    only = sys.argv[1] if len(sys.argv) > 1 else None
    print(json.dumps({"impl": "device", "name": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "copyGBps": copy_bandwidth()}), flush=True)
    for s in shapes:
        if only and only not in s["name"]:
            continue
        for r in run(s):
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
