"""What a run leaves behind: evidence, metrics, the run record, the environment."""
