// csrc/copy_pool.cc on the host (no GPU, no N-API): parallelFor runs every index exactly once and returns
// only when all have run, from one caller or several at once (the JavaScript thread's copy in and a worker's
// copy out share the pool), with tasks of uneven length; and n = 0 and 1 run inline. Prints "ok N".
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "copy_pool.h"

using addon::copyThreads;
using addon::parallelFor;

static int failures = 0;
#define CHECK(cond)                                               \
  do {                                                            \
    if (!(cond)) {                                                \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                 \
    }                                                             \
  } while (0)

// One parallelFor of n tasks: each index once, all done on return.
static void once(size_t n, unsigned salt) {
  std::vector<std::atomic<int>> hits(n);
  for (auto& h : hits) h = 0;
  parallelFor(n, [&](size_t i) {
    if ((i * 2654435761u + salt) % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    hits[i].fetch_add(1);
  });
  for (size_t i = 0; i < n; ++i) CHECK(hits[i].load() == 1);
}

int main() {
  CHECK(copyThreads() >= 1 && copyThreads() <= 8);
  int ran = 0;
  parallelFor(0, [&](size_t) { ++ran; });
  CHECK(ran == 0);
  parallelFor(1, [&](size_t) { ++ran; });
  CHECK(ran == 1);
  for (size_t n : {2, 3, 17, 64, 1000}) once(n, unsigned(n));
  // Four callers at once, each with its own jobs: none waits forever, none runs another's task.
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([c] {
      for (int r = 0; r < 50; ++r) once(size_t(5 + (c * 13 + r) % 40), unsigned(c * 100 + r));
    });
  for (auto& t : callers) t.join();
  std::printf(failures ? "failed %d\n" : "ok %d\n", failures ? failures : copyThreads());
  return failures ? 1 : 0;
}
