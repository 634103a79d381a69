"""Load generation: jitted producer kernels and the threads that run them."""
