"""The one error a target raises: what went wrong in words, and the exit code it means.

2: the user can fix it (a library that does not load, a missing symbol, a
module that does not import, a factory that does not return a bus);
3: the run could not complete (the bus returned a code its target file does
not declare, a call that never returned).
"""
from __future__ import annotations


class TargetError(Exception):
    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
