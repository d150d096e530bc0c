"""Every command's --help ends with an example, and every example parses (issue 23, point 6).

The commands are found by walking click's tree, so a command added later (by anyone) is covered
without touching this test. "Parses" means click accepts the example's command path, options and
their types (choices, ranges, callbacks that check a value) exactly as the shell would hand them
over; nothing runs. A path option whose file must exist is the one thing tolerated (the example
names the user's file).
"""

from __future__ import annotations

import shlex

import click
import pytest
from click.testing import CliRunner

from matstore.cli import main


def _commands(group: click.Group, path=()):
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


COMMANDS = list(_commands(main))


def example_lines(help_text: str) -> list[str]:
    """The example commands of a --help text: the lines after its last 'Example(s)' heading,
    continuation lines (trailing backslash) joined."""
    lines = help_text.rstrip().splitlines()
    heads = [i for i, line in enumerate(lines) if line.strip().startswith("Example")]
    assert heads, "no Example heading"
    out, pending = [], ""
    for line in lines[heads[-1] + 1:]:
        pending = f"{pending} {line.strip()}" if pending else line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        if pending:
            out.append(pending)
        pending = ""
    return out


def parse(argv: list[str]) -> click.Command:
    """Parse argv (after `matstore`) down the command tree as click does, without invoking;
    returns the command reached."""
    ctx = main.make_context("matstore", list(argv), resilient_parsing=False)
    cmd: click.Command = main
    while isinstance(cmd, click.Group):
        args = [*ctx._protected_args, *ctx.args] if hasattr(ctx, "_protected_args") else \
            [*ctx.protected_args, *ctx.args]
        if not args:
            break
        name, sub, rest = cmd.resolve_command(ctx, args)
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return cmd


def _parses(line: str) -> click.Command:
    words = shlex.split(line)
    assert words[0] == "matstore", line
    try:
        return parse(words[1:])
    except click.BadParameter as e:
        # a file the example names (the user's) need not exist here; anything else is an error
        if isinstance(e.param.type, click.Path) and "does not exist" in e.format_message():
            return None
        raise


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_ends_with_an_example_that_parses(path, cmd):
    res = CliRunner().invoke(main, [*path, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    examples = example_lines(res.output)
    assert examples, f"matstore {' '.join(path)} --help ends with no example"
    assert res.output.rstrip().splitlines()[-1].strip().startswith(("matstore", "--")) or \
        examples[-1].startswith("matstore"), res.output
    own = 0
    for line in examples:
        # an example may chain commands (a && b): each part parses
        for part in line.split(" && "):
            reached = _parses(part)
            own += reached is None or reached is cmd or (isinstance(cmd, click.Group) and reached is not main)
    assert own, f"no example of matstore {' '.join(path)} runs that command: {examples}"


def test_the_walk_reaches_every_group_and_new_command():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"structures predict", "relax", "relax-stability", "potentials", "enumerate",
            "train-cccgan", "bias", "al start", "models rename", "export parquet"} <= names


@pytest.mark.parametrize("line,needle", [
    ("matstore al start --autoencoder ae --oracle external --target-source oqmd", "No such option"),
    ("matstore screen stable_semiconductors --max-std x", "not a valid float"),
    ("matstore train --model no-such-preset", "no-such-preset"),
    ("matstore models nonsense", "No such command"),
])
def test_a_wrong_example_would_fail(line, needle):
    """The parse check is not vacuous: unknown options, bad types, unknown choices and commands fail."""
    with pytest.raises(click.UsageError) as e:
        _parses(line)
    assert needle in e.value.format_message()
