// The addon's share of a call's host time (kvbench.mjs, kvprof.mjs): its attention entry point wrapped and
// timed around each call. `reset()` starts the count again.
export function timeAddonAttention(addon) {
  const t = {
    ms: 0,
    calls: 0,
    reset() {
      t.ms = t.calls = 0;
    },
  };
  const attention = addon.attention;
  addon.attention = (...args) => {
    const t0 = performance.now();
    try {
      return attention.apply(addon, args);
    } finally {
      t.ms += performance.now() - t0;
      t.calls++;
    }
  };
  return t;
}
