// Host threads for large host <-> pinned copies. One thread copies about 5-10 GB/s, a fifth of
// what a PCIe 5 link moves, so a call from typed arrays would be bound by the memcpy into pinned
// staging; several threads copy chunks side by side while earlier chunks cross the link.
#pragma once
#include <cstddef>
#include <functional>

namespace addon {

// Runs task(i) for every i in [0, n), on the calling thread and up to copyThreads() - 1 pool
// threads, and returns when all have run. Tasks must not throw.
void parallelFor(size_t n, const std::function<void(size_t)>& task);

// How many threads parallelFor uses (the pool is made on first use and lives for the process).
int copyThreads();

}  // namespace addon
