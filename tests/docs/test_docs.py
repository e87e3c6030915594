"""Keep the documentation honest: commands, links and the README's tour workflow.

* Every ``lightflow ...`` command line in a fenced shell block of ``docs/*.md`` and
  ``README.md`` names commands and options that exist in the click tree under
  :data:`lightflow.cli.main.cli` (extension commands included when installed).
* Every relative Markdown link in those files points to an existing file, and an
  ``#anchor`` on a Markdown file to one of its headings (GitHub's heading ids).
* The workflow of the README's "A short tour" runs to success on the embedded engine.

The checkers are tested on small bad inputs as well, so a check that silently finds
nothing fails here instead of passing.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from lightflow import api
from lightflow.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DOC_FILES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]

#: Fenced blocks whose every line is a shell command line.
SHELL_LANGUAGES = {"bash", "sh", "shell", "zsh"}
#: Fenced blocks holding a session: commands are the lines starting with ``$ ``.
SESSION_LANGUAGES = {"console", "shell-session"}
#: Fenced blocks holding synopses: the lines starting with ``lightflow``.
SYNOPSIS_LANGUAGES = {"text", ""}

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
#: Box-drawing characters and arrows: the end of a command in a text diagram.
_DRAWING = re.compile("[\u2190-\u21ff\u2500-\u257f\u25a0-\u25ff]")
_SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "<", ">", ">>", "$"}


# -- reading Markdown -----------------------------------------------------------------------
@dataclass
class Block:
    """A fenced code block: its language, first line number and lines."""

    language: str
    line: int
    lines: list[str]


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[Block]]:
    """The numbered prose lines (outside fences) and the fenced blocks of ``text``."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence: str | None = None
    block: Block | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(2)
                block = Block(match.group(3).lower(), number + 1, [])
                blocks.append(block)
            else:
                prose.append((number, line))
        elif match and match.group(2).startswith(fence) and not match.group(3):
            fence, block = None, None
        else:
            assert block is not None
            block.lines.append(line)
    return prose, blocks


def command_lines(text: str) -> Iterator[tuple[int, str]]:
    """The numbered shell command lines of the fenced blocks in ``text``."""
    _prose, blocks = split_markdown(text)
    for block in blocks:
        for offset, line in enumerate(block.lines):
            stripped = line.strip()
            if block.language in SHELL_LANGUAGES:
                command = stripped
            elif block.language in SESSION_LANGUAGES and stripped.startswith("$ "):
                command = stripped[2:]
            elif block.language in SYNOPSIS_LANGUAGES and stripped.startswith("lightflow"):
                command = stripped
            else:
                continue
            if "lightflow" in command:
                yield block.line + offset, command


def invocations(command: str) -> Iterator[list[str]]:
    """The argument lists following each ``lightflow`` word of a shell line."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: fall back to plain words
        tokens = command.split()
    for index, token in enumerate(tokens):
        if token == "lightflow":
            args = []
            for arg in tokens[index + 1 :]:
                if arg in _SHELL_OPERATORS or set(arg) <= set("|&;()<>") or _DRAWING.search(arg):
                    break
                args.append(arg)
            yield args


# -- checking commands against the click tree -----------------------------------------------
def _is_placeholder(token: str) -> bool:
    """``COMMAND``, ``[ARGS]...``, ``<cmd>``, ``KEY=VALUE``: not a literal word."""
    bare = token.strip("[]<>.")
    return (
        token.startswith(("[", "<"))
        or token.endswith(("]", "...", ">"))
        or (bare != "" and bare == bare.upper() and any(c.isalpha() for c in bare))
    )


def _option(command: click.Command, name: str) -> click.Parameter | None:
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def check_invocation(args: list[str]) -> str | None:
    """What is wrong with ``lightflow ARGS`` (``None`` if its commands and options exist).

    A word that looks like a placeholder (``COMMAND``, ``[OPTIONS]``) where a command
    name is expected ends the check; the arguments of a command that is not a group
    are skipped, its options checked.
    """
    ctx = click.Context(cli, info_name="lightflow")
    command: click.Command = cli
    path = ["lightflow"]
    tokens = list(args)
    while tokens:
        token = tokens.pop(0)
        optional = token.startswith("[-")
        if optional:  # an option in a synopsis: [-f], [-n N], [--keep-data]
            token = token.strip("[]").rstrip(".")
        if token.startswith("-") and token not in ("-", "--"):
            name = token.split("=", 1)[0]
            if name in ("-h", "--help"):
                return None
            option = _option(command, name)
            if option is None:
                if command.context_settings.get("ignore_unknown_options"):
                    continue  # passed through (e.g. Celery's options to `worker start`)
                return f"`{' '.join(path)}` has no option {name}"
            takes_value = not (isinstance(option, click.Option) and option.is_flag)
            if takes_value and "=" not in token and tokens and not optional:
                tokens.pop(0)
            continue
        if token == "--":
            return None
        if not isinstance(command, click.Group):
            continue  # an argument of a leaf command
        if _is_placeholder(token):
            return None
        sub = command.get_command(ctx, token)
        if sub is None:
            known = ", ".join(command.list_commands(ctx))
            return f"`{' '.join(path)}` has no command '{token}' (commands: {known})"
        path.append(token)
        command = sub
    return None


def command_problems(path: Path) -> list[str]:
    problems = []
    for line, command in command_lines(path.read_text(encoding="utf-8")):
        for args in invocations(command):
            problem = check_invocation(args)
            if problem is not None:
                problems.append(f"{path.name}:{line}: {command}\n    {problem}")
    return problems


# -- checking links ----------------------------------------------------------------------
def heading_ids(text: str) -> set[str]:
    """The ids GitHub gives the headings of a Markdown text."""
    prose, _blocks = split_markdown(text)
    ids: set[str] = set()
    seen: dict[str, int] = {}
    for _number, line in prose:
        match = _HEADING.match(line)
        if not match:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # links: their text
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def links(text: str) -> Iterator[tuple[int, str]]:
    """The numbered link targets of the prose of ``text`` (inline code left out)."""
    prose, _blocks = split_markdown(text)
    for number, line in prose:
        line = _INLINE_CODE.sub("", line)
        for match in _LINK.finditer(line):
            yield number, match.group(1)
        reference = _REFERENCE.match(line)
        if reference:
            yield number, reference.group(1)


def link_problems(path: Path) -> list[str]:
    problems = []
    text = path.read_text(encoding="utf-8")
    for line, target in links(text):
        if re.match(r"^[a-zA-Z][\w+.-]*:", target) or target.startswith("//"):
            continue  # http:, https:, mailto: ...
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.name}:{line}: ({target})"
        if not destination.exists():
            problems.append(f"{where} points to {destination}, which does not exist")
            continue
        if anchor and destination.suffix == ".md" and destination.is_file():
            if anchor not in heading_ids(destination.read_text(encoding="utf-8")):
                problems.append(f"{where}: {destination.name} has no heading '#{anchor}'")
    return problems


# -- the tests ---------------------------------------------------------------------------
def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def test_the_documentation_is_found() -> None:
    names = {p.name for p in DOC_FILES}
    assert {"README.md", "index.md", "cli.md", "cluster.md"} <= names
    commands = [c for p in DOC_FILES for _, c in command_lines(p.read_text(encoding="utf-8"))]
    assert len(commands) >= 30, commands
    for expected in ("lightflow worker start", "lightflow workflow start", "lightflow monitor"):
        assert any(expected in c for c in commands), expected
    assert sum(1 for p in DOC_FILES for _ in links(p.read_text(encoding="utf-8"))) >= 20


@pytest.mark.parametrize("path", DOC_FILES, ids=_ids(DOC_FILES))
def test_shown_commands_exist(path: Path) -> None:
    problems = command_problems(path)
    assert not problems, "commands that do not exist:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", DOC_FILES, ids=_ids(DOC_FILES))
def test_relative_links_resolve(path: Path) -> None:
    problems = link_problems(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_tour_workflow_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n## A short tour\n" in readme, "README.md has no 'A short tour' section"
    section = readme.split("\n## A short tour\n", 1)[1].split("\n## ", 1)[0]
    _, blocks = split_markdown(section)
    python = [b for b in blocks if b.language == "python"]
    assert python, "README.md 'A short tour' has no python block"
    source = tmp_path / "tour.py"
    source.write_text("\n".join(python[0].lines) + "\n", encoding="utf-8")

    result = api.run_workflow(str(source))

    assert result.outcome == "succeeded", (result.error, result.traceback)
    assert result.tasks and all(t.state == "succeeded" for t in result.tasks), result.tasks
    assert "published" in capsys.readouterr().out


# -- the checkers catch what they are for ------------------------------------------------
BAD_DOC = """\
# Title

## Some section

See [the CLI](cli.md), [a missing page](nope.md), [a section](#some-section),
[a missing section](#nowhere), [a file's section](cli.md#no-such-heading) and
`[not a link](ignored.md)`.

```bash
lightflow workflow strat scan     # a typo
lightflow worker start -q gpu --concurrency 2
```

```console
$ run=$(lightflow workflow start scan --no-such-flag)
$ lightflow monitr
lightflow output lines are not commands
```

```text
lightflow monitor  ──▶  broker  ──▶  lightflow worker start -q gpu
```

```text
lightflow workflow status [-d] [-n N] [RUN_ID]
lightflow config default [-x] DIRECTORY
```
"""


def test_the_command_check_finds_wrong_commands_and_options(tmp_path: Path) -> None:
    doc = tmp_path / "bad.md"
    doc.write_text(BAD_DOC, encoding="utf-8")

    problems = "\n".join(command_problems(doc))

    assert "has no command 'strat'" in problems
    assert "has no option --no-such-flag" in problems
    assert "has no command 'monitr'" in problems
    assert "has no option -x" in problems
    assert "--concurrency" not in problems  # Celery's, passed through by worker start
    assert "output lines" not in problems
    assert "[-d]" not in problems
    assert len(command_problems(doc)) == 4


def test_the_command_check_walks_options_and_placeholders() -> None:
    assert check_invocation(["-c", "lightflow.cfg", "workflow", "list"]) is None
    assert check_invocation(["--config=x.cfg", "run", "flow.py", "-w", "4", "a=1"]) is None
    assert check_invocation(["COMMAND", "[ARGS]..."]) is None
    assert check_invocation(["workflow", "graph", "--format", "mermaid", "NAME"]) is None
    assert check_invocation(["workflow", "--help"]) is None
    assert check_invocation(["-q", "workflow"]) is not None
    assert check_invocation(["worker", "begin"]) is not None
    assert check_invocation(["run", "flow.py", "a=1", "--quite"]) is not None


def test_the_link_check_finds_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "cli.md").write_text("# CLI\n\n## lightflow run\n", encoding="utf-8")
    doc = tmp_path / "bad.md"
    doc.write_text(BAD_DOC, encoding="utf-8")

    problems = "\n".join(link_problems(doc))

    assert "(nope.md)" in problems
    assert "(#nowhere)" in problems
    assert "(cli.md#no-such-heading)" in problems
    assert "ignored.md" not in problems
    assert "(#some-section)" not in problems
    assert len(link_problems(doc)) == 3


def test_heading_ids_follow_github() -> None:
    text = "# Concurrency and `join_dags`\n## lightflow workflow start\n## Run\n## Run\n"
    assert heading_ids(text) == {
        "concurrency-and-join_dags",
        "lightflow-workflow-start",
        "run",
        "run-1",
    }
