"""What jitted code is built from: the kernel decorators (jit), atomics, clock,
calls by address (ffi), histograms and the payload every producer writes."""
