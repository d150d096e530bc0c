"""The README's study ("## A study, step by step"), command for command.

`commands(readme_text)` returns the study's commands: every ```sh block of that section, one entry
per shell command (continuation lines and multi-line quoted SQL joined, comments dropped).
tests/test_readme_study.py runs them on a small store; this script runs them at the README's own
sizes, printing each command, its output and its time, which is how the README's outputs were made:

    scripts/readme_study.py [WORKDIR [FIRST]]   (default /tmp/matstore_study; data: $D or ../shared/data)

FIRST (a number) starts at that command (1 = the first), in a WORKDIR that holds the earlier ones.

Needs `matstore` of the project's venv on PATH.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

STUDY_HEADING = "## A study, step by step"


def study_section(text: str) -> str:
    start = text.index(STUDY_HEADING)
    end = text.find("\n## ", start + len(STUDY_HEADING))
    return text[start:end if end >= 0 else len(text)]


def _complete(cmd: str) -> bool:
    """True when cmd is a whole shell command (quotes closed, no trailing backslash)."""
    if cmd.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(cmd, comments=True)
    except ValueError:  # an open quote: the SQL goes on on the next line
        return False
    return True


def commands(text: str) -> list[str]:
    """Shell commands of the study's ```sh blocks, in order."""
    out = []
    for block in re.findall(r"^```sh\n(.*?)^```", study_section(text), flags=re.S | re.M):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending = f"{pending}\n{line}" if pending else line
            if _complete(pending):
                out.append(pending)
                pending = ""
        if pending:
            raise ValueError(f"README study: unfinished command {pending!r}")
    return out


def main(argv: list[str]) -> int:
    repo = Path(__file__).resolve().parents[1]
    work = Path(argv[0] if argv else "/tmp/matstore_study")
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "D": os.environ.get("D", str(repo.parent / "shared" / "data"))}
    first = int(argv[1]) if len(argv) > 1 else 1
    script = "set -eo pipefail\n"
    for i, cmd in enumerate(commands((repo / "README.md").read_text()), 1):
        if cmd.startswith("export D="):  # D is set above (absolute: the study runs in WORKDIR)
            continue
        if i < first and not cmd.startswith("export "):
            continue
        # every command in one shell (the study's exports carry), each printed with its wall time
        script += (f"echo; echo {shlex.quote(f'$ [{i}] ' + cmd)}; t=$SECONDS\n{cmd}\n"
                   f"echo \"[$((SECONDS - t)) s]\"\n")
    start = time.time()
    rc = subprocess.run(["bash", "-c", script], cwd=work, env=env).returncode
    print(f"\nstudy: exit {rc} in {time.time() - start:.0f} s", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
