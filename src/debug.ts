/**
 * Switches for the conformance suite. With `poisonOutputs` on, engines fill their output buffers
 * with NaN before computing, so an element the kernel never wrote shows up as NaN in the check.
 */
export const debug = { poisonOutputs: false };
