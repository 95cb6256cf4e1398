// Tile shapes: one kernel template, two tiles per head-dim class. `Main` follows FlashAttention-2's
// forward choices for sm80/sm90 (128 query rows; 4 warps for d <= 128, 8 for 256; 128 keys per
// tile for d64, 64 otherwise). For d64, 128 keys beat 64 by 3-10% on an H100 despite ~140 bytes
// of register spills, and 8 warps x 16 rows lost 25% (notes/cuda-kernel.md). `Small` has
// 16 rows and one warp: for decode-like calls (query rows x grouped heads <= 16) where a
// 128-row tile would spend its tensor-core time on padding; with split-KV it keeps enough key
// tiles in flight to run at memory speed.
#pragma once

namespace fa {

// Wgmma: the Hopper kernel's 128x128 tile (fwd_wgmma.cuh), for the fast path on sm_90.
enum class Tile : int { Main = 1, Small = 2, Wgmma = 3 };

// Stages_: K/V tile buffers in the load ring (fwd_kernel.cuh). 2 is FlashAttention-2's pipeline (K and
// V, each loaded while the other is used); 4 keeps 3 tiles in flight while one is used, for the small
// tile, whose one-warp blocks compute too little per tile to hide a load behind it. Measured (H200, v12):
// decode +6% at 4k keys, +0.3% at 32k, so bytes in flight were not what bounds the flat decode.
// Planes_: 2 for float32 inputs computed as float16 pairs (split.cuh): each of Q, K and V is held as a
// high and a low plane, so shared memory doubles.
template <int D_, int BM_, int BN_, int W_, int MinBlocks_, int Stages_ = 2, int Planes_ = 1>
struct TileCfg {
  static constexpr int kD = D_;    // head-dim class: the smem row length
  static constexpr int kBM = BM_;  // query rows per block
  static constexpr int kBN = BN_;  // keys per tile
  static constexpr int kWarps = W_;
  static constexpr int kMinBlocks = MinBlocks_;
  static constexpr int kThreads = W_ * 32;
  static constexpr int kMT = BM_ / (16 * W_);  // m16 tiles per warp
  static constexpr int kNT = BN_ / 8;          // n8 tiles of S per m16 tile
  static constexpr int kOT = D_ / 8;           // n8 tiles of O per m16 tile
  static constexpr int kChunks = D_ / 8;       // 16-byte chunks per smem row
  // Tile loads: kCL threads side by side along a row's chunks, kRowsPerPass rows per pass. Rows
  // of one thread are kRowsPerPass (a multiple of 8) apart, so their swizzle (row & 7) is fixed.
  static constexpr int kCL = kChunks < kThreads / 8 ? kChunks : kThreads / 8;
  static constexpr int kRowsPerPass = kThreads / kCL;
  static constexpr int kStages = Stages_;
  static constexpr int kPlanes = Planes_;
  static constexpr int kSmemBytes = Planes_ * (BM_ + Stages_ * BN_) * D_ * 2;
  static_assert(Stages_ == 2 || Stages_ == 4, "K and V alternate: an even ring");
  static_assert(kMT >= 1 && BM_ % (16 * W_) == 0, "each warp owns whole m16 tiles");
  static_assert(D_ % 64 == 0, "the XOR swizzle needs rows of at least 8 chunks");
  static_assert(kRowsPerPass % 8 == 0 && BN_ % kRowsPerPass == 0 && BM_ % kRowsPerPass == 0 && kChunks % kCL == 0,
                "loads tile evenly");
};

template <int D>
struct MainTileOf;
template <>
struct MainTileOf<64> {
  using type = TileCfg<64, 128, 128, 4, 2>;
};
template <>
struct MainTileOf<128> {
  using type = TileCfg<128, 128, 64, 4, 2>;
};
template <>
struct MainTileOf<256> {
  using type = TileCfg<256, 128, 64, 8, 1>;
};
template <int D>
using MainTile = typename MainTileOf<D>::type;
template <int D>
using SmallTile = TileCfg<D, 16, 64, 1, 4, (D <= 128 ? 4 : 2)>;

// The float32 tiles (split.cuh): three products per matrix product and two planes of every operand,
// so 64 rows (one m16 tile per warp: the accumulators of a 128-row tile and the second P plane did not
// fit the registers) and two stages; decode-like calls take 16 rows as the half kernel does.
template <int D>
using SplitMainTile = TileCfg<D, 64, 64, 4, (D <= 128 ? 2 : 1), 2, 2>;
template <int D>
using SplitSmallTile = TileCfg<D, 16, 64, 1, (D <= 128 ? 3 : 1), 2, 2>;

// What the planner needs of a tile: its rows and keys per block, and the blocks an SM holds.
struct TileInfo {
  int bm, bn, blocksPerSm;
};

}  // namespace fa
