// Which kernel instance serves a call (chooseKernel), and the dispatch to it: the only place that
// decides it, as llama.cpp's fattn.cu has one function say which kernel fits. Host code; the
// kernels' entry points are in fwd.h.
#include "choose.h"

#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include "fwd.h"

namespace fa {

// Head dims are padded to multiples of 8 (16-byte rows); the padding is zeros.
int paddedDim(int d) {
  return (d + 7) & ~7;
}

// The kernel's scale and softcap parameters, computed once here for both the kernel choice and
// FwdParams, so the choice sees exactly what the kernel will.
float scaleLog2Of(const ForwardArgs& a) {
  return float(double(a.softmaxScale) * 1.4426950408889634);
}
float softcapInvOf(const ForwardArgs& a) {
  return a.softcap > 0 ? float(double(a.softmaxScale) / a.softcap) : 0.f;
}

// Which kernel instance serves a call; the only place that decides it (as llama.cpp's fattn.cu
// has one function say which kernel fits). The tile: forced, or 16 rows when the query rows times
// grouped heads are at most 16 (decode), else 128. The fast copy of the loop (kFull): head dims
// that fill the class once padded, no softcap, no ALiBi and a positive scale (fwd_kernel.cuh).
// The Hopper kernel takes the 128-row tile of head-dim classes 64 and 128, fast copy or general
// (softcap, ALiBi, any scale, padded head dims, Dv != D), when the wgmma knob is on and no tile was
// forced to 'main', and only where `hasImage` says it has an image for the device (sm_90);
// everything else runs on mma.sync.
KernelChoice chooseKernel(const ForwardArgs& a, const std::function<bool(const KernelChoice&)>& hasImage) {
  KernelChoice k;
  k.computeType = a.dtype == DType::BF16 ? DType::BF16 : DType::F16;
  k.split = exactFloat32(a);  // float32 to float32 accuracy: float16 pairs on the tensor cores (split.cuh)
  const int d = paddedDim(a.headDim), dv = paddedDim(a.headDimV), widest = std::max(d, dv);
  const int cls = widest <= 64 ? 64 : widest <= 128 ? 128 : 256;
  k.headDimClass = cls;
  const bool forced = a.forceTile == int(Tile::Main) || a.forceTile == int(Tile::Small);
  k.tile = forced                                                        ? Tile(a.forceTile)
           : (long long)a.maxSeqlenQ * (a.numHeads / a.numKvHeads) <= 16 ? Tile::Small
                                                                         : Tile::Main;
  k.full = d == cls && dv == cls && softcapInvOf(a) == 0.f && a.alibiSlopes.empty() && scaleLog2Of(a) > 0.f;
  const bool hopper = k.tile == Tile::Main && a.forceTile != int(Tile::Main) && a.wgmma && (cls == 64 || cls == 128);
  if (hopper) {
    KernelChoice wg = k;
    wg.tile = Tile::Wgmma;
    if (hasImage(wg)) k = wg;
  }
  return k;
}

namespace {

// f(std::integral_constant<int, D>) for the head-dim class D of a choice: the one switch from the
// run-time class to the instances.
template <class F>
cudaError_t byClass(int cls, F&& f) {
  switch (cls) {
    case 64:
      return f(std::integral_constant<int, 64>{});
    case 128:
      return f(std::integral_constant<int, 128>{});
    default:
      return f(std::integral_constant<int, 256>{});
  }
}

template <typename T>
cudaError_t dispatchRun(const KernelChoice& k, const FwdParams& p, cudaStream_t st) {
  return byClass(k.headDimClass, [&](auto dc) -> cudaError_t {
    constexpr int D = decltype(dc)::value;
    if (k.tile == Tile::Wgmma) {
      if constexpr (D <= 128) {
        if (k.split) return k.full ? runFwdWgmmaSplit<D, true>(p, st) : runFwdWgmmaSplit<D, false>(p, st);
        return k.full ? runFwdWgmma<T, D, true>(p, st) : runFwdWgmma<T, D, false>(p, st);
      }
      return cudaErrorInvalidValue;  // chooseKernel never picks it
    }
    return k.split ? runFwdSplit<D>(p, k.tile, k.full, st) : runFwd<T, D>(p, k.tile, k.full, st);
  });
}

template <typename T>
cudaError_t dispatchInfo(const KernelChoice& k, TileInfo* ti) {
  return byClass(k.headDimClass, [&](auto dc) -> cudaError_t {
    constexpr int D = decltype(dc)::value;
    if (k.tile == Tile::Wgmma) {
      if constexpr (D <= 128) {
        if (k.split) return k.full ? wgmmaSplitTileInfo<D, true>(ti) : wgmmaSplitTileInfo<D, false>(ti);
        return k.full ? wgmmaTileInfo<T, D, true>(ti) : wgmmaTileInfo<T, D, false>(ti);
      }
      return cudaErrorInvalidValue;
    }
    return k.split ? fwdSplitTileInfo<D>(k.tile, ti) : fwdTileInfo<T, D>(k.tile, ti);
  });
}

}  // namespace

cudaError_t runKernel(const KernelChoice& k, const FwdParams& p, cudaStream_t st) {
  return k.computeType == DType::BF16 ? dispatchRun<__nv_bfloat16>(k, p, st) : dispatchRun<__half>(k, p, st);
}

// The tile configuration of a kernel choice (occupancy queries, shared-memory opt-in) costs a few
// CUDA runtime calls; it is the same for every call, so it is asked once per process and choice.
cudaError_t cachedTileInfo(const KernelChoice& k, TileInfo* ti) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int, bool, bool>, std::pair<cudaError_t, TileInfo>> known;
  const auto key = std::make_tuple(int(k.computeType), k.headDimClass, int(k.tile), k.split, k.full);
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(key);
  if (it == known.end()) {
    TileInfo t{};
    cudaError_t e = k.computeType == DType::BF16 ? dispatchInfo<__nv_bfloat16>(k, &t) : dispatchInfo<__half>(k, &t);
    if (e != cudaSuccess) (void)cudaGetLastError();  // no image for this device: not sticky
    it = known.emplace(key, std::make_pair(e, t)).first;
  }
  *ti = it->second.second;
  return it->second.first;
}

int multiprocessors() {
  static const int sms = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev)) return 0;
    return n;
  }();
  return sms;
}

}  // namespace fa
