"""Targets: the buses busbench can drive, behind one interface (base.py)."""
