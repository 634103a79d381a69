"""What the evidence means: checks, statistics, precision, the regression gate, compare."""
