"""Doing a run: the runner, sampler, watchdog, thread CPU, snapshots, the lab."""
