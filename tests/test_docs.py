"""The README and docs/ name only commands, options and files that exist (issue 18 part 6).

Every ``busbench ...`` command line in README.md and docs/**/*.md (in code blocks,
fenced or indented, and in inline code) is resolved through the click command
object: the words after ``busbench`` walk down its groups to a command, and every
option word must be one of that command's options (or of a group above it, written
before the subcommand). Every repository path those lines name, every path a
``python ...`` or ``make ...`` line in a code block names and every path written
as inline code (`` `busbench/targets/base.py` ``) must exist (a glob must match
something); so must every relative link. Paths under ``results/`` and other
folders a run creates are outputs, not checked; a path component written in
capitals (``scenarios/net-mesh/X.yaml``) is a placeholder.

The checker is tried on bad lines too, so it is known to fail.
"""
from __future__ import annotations

import glob
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from busbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: folders of the repository a command line may name (outputs such as results/ are not)
REPO_FOLDERS = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
                and p.name not in ("results", "build", "dist") and not p.name.endswith(".egg-info")
                and p.name != "__pycache__"} | {".ci"}

#: ``busbench`` where a command starts: at the start of the line, after a shell operator,
#: a prompt, ``python -m``, ``time``, ``nice``, or a CI step's ``run:`` (not in output
#: such as "a redis-server started by busbench on 127.0.0.1")
_BUSBENCH = re.compile(r"(?:^|(?<=[;&|(])|(?<=[;&|(] )|(?<=\$ )|(?<=-m )|(?<=run: )|(?<=time )|(?<=nice )"
                       r"|(?<=nice -n \d\d )|(?<=nice -n \d ))busbench(?=[ \t])")
_OTHER = re.compile(r"(?<![\w/.\-])(?:python3?|make)(?=[ \t])")
_END = re.compile(r"\s#|&&|;|\s\|\s|\|\||\)|\s>|`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_INLINE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Problem:
    where: str
    text: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text!r}: {self.why}"


# --------------------------------------------------------------------------- reading markdown


def code_lines(markdown: str):
    """(line number, text, in a block) for each logical line of code: the lines of fenced
    and indented blocks, and each inline span. In a block, a trailing backslash joins the
    next line, and so does a synopsis's next line that starts with an option (``[--x]``)."""
    block: list = []            # (line number, text) of the block being read
    fence = None
    previous_blank, indented = True, False
    for n, line in enumerate(markdown.split("\n") + [""], 1):
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = stripped[:3]
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
                yield from _logical(block)
                block = []
            else:
                block.append((n, stripped))
            continue
        indented = bool(line.startswith("    ") and stripped and (
            indented or (previous_blank and not stripped.startswith(("-", "*", "|")))))
        previous_blank = not stripped
        if indented:
            block.append((n, stripped))
            continue
        if block:
            yield from _logical(block)
            block = []
        for span in _INLINE.findall(line):
            yield n, span.strip(), False


def _logical(block):
    lines: list = []
    joining = False
    for n, text in block:
        if lines and (joining or text.startswith(("[-", "--"))):
            lines[-1] = (lines[-1][0], lines[-1][1].rstrip("\\ ") + " " + text)
        else:
            lines.append((n, text))
        joining = text.endswith("\\")
    for n, text in lines:
        yield n, text.rstrip("\\ "), True


def commands_in(text: str, pattern=_BUSBENCH):
    """Each command starting at a match of ``pattern`` in a line of code, up to the end of
    the line or a shell operator, a comment or the end of a command substitution."""
    text = text.strip()
    for m in pattern.finditer(text):
        yield text[m.start():m.start() + len(m.group())] + _END.split(text[m.end():])[0]


def words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:          # an unclosed quote (cut at a shell operator): plain words
        return command.split()


# --------------------------------------------------------------------------- judging


def option_names(command: click.Command, ctx: click.Context) -> set[str]:
    names = set()
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def check_path(word: str) -> str | None:
    """Why ``word``, read as a repository path, is wrong; None when it exists or is not one."""
    text = word.strip("'\"[](),")
    if "/" not in text or any(c in text for c in "=$<>{}~") or text.startswith(("/", "./", "http")):
        return None
    parts = [p for p in text.split("/") if p]
    if not parts or parts[0] not in REPO_FOLDERS:
        return None
    if any(re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\w+)?(\.\.\.)?", p) for p in parts):
        return None                               # a placeholder: SCENARIO.yaml, X.yaml, DIR
    if any(c in text for c in "*?["):
        return None if glob.glob(str(ROOT / text)) else f"{text} matches no file"
    return None if (ROOT / text).exists() else f"{text} does not exist"


def check_command(command: str) -> list[str]:
    """What is wrong with one ``busbench ...`` command line (empty: nothing)."""
    problems = []
    cmd: click.Command = main
    ctx = click.Context(main, info_name="busbench")
    chain = [(cmd, ctx)]
    for word in words(command)[1:]:
        token = word.strip("[]()")
        if not token or token == "...":
            continue
        if token.startswith("-") and len(token) > 1 and not re.match(r"-\d", token):
            for name in re.split(r"[/|]", token.split("=")[0]):
                name = name.strip("[]()")
                if not name.startswith("-"):
                    continue
                known = set().union(*(option_names(c, x) for c, x in chain))
                if name not in known:
                    near = sorted(known, key=lambda k: _distance(k, name))[:1]
                    problems.append(f"{' '.join(x.command_path for _, x in chain[-1:])} has no "
                                    f"option {name} (nearest: {', '.join(near)})")
            continue
        if isinstance(cmd, click.Group):
            sub = cmd.commands.get(token)
            if sub is None:
                near = sorted(cmd.commands, key=lambda k: _distance(k, token))[:1]
                problems.append(f"{ctx.command_path} has no command {token!r} (nearest: "
                                f"{', '.join(near)})")
                break
            ctx = click.Context(sub, info_name=token, parent=ctx)
            cmd = sub
            chain.append((cmd, ctx))
            continue
        why = check_path(token)
        if why:
            problems.append(why)
    if isinstance(cmd, click.Group) and not problems and not any(
            w.startswith("-") for w in words(command)[1:]):
        problems.append(f"{ctx.command_path} is a group: it needs a command "
                        f"({', '.join(sorted(cmd.commands))})")
    return problems


def _distance(a: str, b: str) -> int:
    import difflib
    return -int(100 * difflib.SequenceMatcher(None, a, b).ratio())


def problems_in(markdown: str, where: str, page: Path | None = None) -> tuple[list[Problem], int]:
    """(problems, how many busbench command lines were judged) for one page's text."""
    problems, judged = [], 0
    for n, text, in_block in code_lines(markdown):
        for command in commands_in(text):
            judged += 1
            problems += [Problem(f"{where}:{n}", command, why) for why in check_command(command)]
        if not in_block and " " not in text:
            why = check_path(text)             # an inline path: `busbench/targets/base.py`
            if why:
                problems.append(Problem(f"{where}:{n}", text, why))
        if in_block:
            for command in commands_in(text, _OTHER):
                for word in words(command)[1:]:
                    why = check_path(word)
                    if why:
                        problems.append(Problem(f"{where}:{n}", command, why))
    base = (page.parent if page else ROOT)
    for n, line in enumerate(markdown.split("\n"), 1):
        for target in _LINK.findall(line):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (base / target.split("#")[0]).resolve()
            relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
            if not path.exists():
                problems.append(Problem(f"{where}:{n}", target, f"links to {relative}, which does not exist"))
    return problems, judged


# --------------------------------------------------------------------------- the pages


def test_every_command_option_path_and_link_in_the_docs_exists():
    problems, judged = [], 0
    for page in PAGES:
        found, n = problems_in(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix(), page)
        problems += found
        judged += n
    assert not problems, "\n".join(map(str, problems))
    assert judged >= 50, f"only {judged} busbench command lines found: is the reader broken?"


def test_every_reference_page_is_reachable_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        name = page.relative_to(ROOT).as_posix()
        assert f"]({name})" in readme, f"README.md does not link to {name}"


def test_the_readme_is_a_front_door_and_its_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(block) == 2 and "busbench run scenarios/quickstart.yaml" in block[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert block[1] in ci, f"README's test command {block[1]!r} is not a line of .ci/run"


# --------------------------------------------------------------------------- the checker can fail


@pytest.mark.parametrize(("text", "expected"), [
    ("```\nbusbench rnu scenarios/quickstart.yaml\n```", "has no command 'rnu' (nearest: run)"),
    ("Try `busbench run scenarios/quickstart.yaml --no-such-flag`.", "has no option --no-such-flag"),
    ("```\nbusbench compare scenarios/quickstart.yaml --vary bus.shards=2,4 --precison 5%\n```",
     "has no option --precison (nearest: --precision)"),
    ("```\nbusbench lab false-sharing --op add --stride 8\n```", "has no option --stride"),
    ("```\nbusbench releases\n```", "is a group: it needs a command"),
    ("```\nbusbench run scenarios/no_such_scenario.yaml\n```", "scenarios/no_such_scenario.yaml does not exist"),
    ("```\nbusbench run scenarios/nothing-*.yaml --junit results/junit.xml\n```", "matches no file"),
    ("```\nnice python benchmarks/no_such_bench.py --seconds 1\n```", "benchmarks/no_such_bench.py does not exist"),
    ("See [the checks](docs/no_such_page.md).", "links to docs/no_such_page.md, which does not exist"),
    ("The interface is in `busbench/targets/no_such_base.py`.", "busbench/targets/no_such_base.py does not exist"),
    ("    busbench matrix scenarios/net-mesh/*.yaml \\\n      --versions 1 --no-such", "has no option --no-such"),
])
def test_a_bad_command_option_path_or_link_is_reported(text, expected):
    problems, _ = problems_in(text, "synthetic.md")
    assert any(expected in p.why for p in problems), problems


def test_good_lines_pass_and_placeholders_and_outputs_are_not_paths():
    text = "\n".join([
        "```",
        "busbench run scenarios/*.yaml scenarios/mutations/*.yaml --junit results/junit.xml",
        "busbench run SCENARIO.yaml... [--live/--no-live] [--set KEY=VALUE ...] [--seed N]",
        "busbench init [NAME] [--from quickstart|FILE] [--dir DIR] [--force]",
        "busbench completion bash|zsh|fish",
        "busbench lab false-sharing [--strides 8,64,128,256] [--op store|add]",
        'echo \'eval "$(busbench completion bash)"\' >> ~/.bashrc',
        "python -m busbench releases list",
        "busbench --version",
        "make -C examples/c_bus && busbench run examples/c_bus/scenario.yaml",
        "```",
        "Each row: `busbench run scenarios/net-mesh/X.yaml`; see [checks](docs/checks.md).",
    ])
    problems, judged = problems_in(text, "synthetic.md")
    assert problems == []
    assert judged == 10
