"""The ``kafka`` target: librdkafka's producer (bundled in the confluent-kafka wheel),
driven by busbench's Numba producer kernels and judged by what the broker's log holds."""
