"""busbench: load-test, benchmark and check sharded in-process event buses."""
__version__ = "0.1.0"
