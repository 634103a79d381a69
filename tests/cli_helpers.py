"""Helpers shared by the command-line tests: invoke busbench in-process as a CI
log would see it."""
from click.testing import CliRunner

from busbench.cli import main

#: environment variables that would make rich colour or size output differently from a CI log
STYLE_ENV = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None,
             "NO_COLOR": None, "GITHUB_STEP_SUMMARY": None}


def cli(*args, columns=200, env=None):
    """Invoke busbench in-process; never let click swallow an unexpected exception."""
    full_env = dict(STYLE_ENV, COLUMNS=str(columns))
    full_env.update(env or {})
    result = CliRunner().invoke(main, [str(a) for a in args], env=full_env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"busbench {' '.join(map(str, args))} raised "
                             f"{result.exception!r}\n{result.output}") from result.exception
    return result


def flat(text: str) -> str:
    """Whitespace collapsed, so that a message wrapped by rich reads as one line."""
    return " ".join(text.split())
