"""A shell launch script's last command, asked for instead of run, so that a preloaded server
can fork it rather than start a fresh interpreter. A script offers this by naming
HPSYS_EXEC_PLAN: when that variable names a file, the script writes its working directory, the
argv it would `exec` and its environment there (NUL-separated: cwd, argv count, argv..., then
`env -0`) and exits 0:

    CMD=("$PY" codes/train.py --config "$CONFIG" "$@")
    if [[ -n "${HPSYS_EXEC_PLAN:-}" ]]; then
      { printf '%s\\0' "$PWD" "${#CMD[@]}" "${CMD[@]}"; env -0; } > "$HPSYS_EXEC_PLAN"; exit 0
    fi
    exec "${CMD[@]}"

Everything before the exec runs once, in the planning run; the command then starts exactly as
the script would have started it. A script that says nothing usable runs as it always did.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

MARKER = "HPSYS_EXEC_PLAN"
PLAN_TIMEOUT_S = 30.0


class Plan(NamedTuple):
    """The command a script would exec: where, what, with which environment."""

    cwd: str
    argv: tuple[str, ...]
    env: dict[str, str]


def script_of(argv: Sequence[str], cwd: str) -> Path | None:
    """The shell script of `argv` (`x.sh ...` or `bash x.sh ...`), else None."""
    for part in argv[:2]:
        if part.endswith(".sh"):
            return Path(cwd, part)
    return None


def offered(argv: Sequence[str], cwd: str) -> bool:
    """Whether the shell script of `argv` can say its command (it names HPSYS_EXEC_PLAN)."""
    script = script_of(argv, cwd)
    try:
        return script is not None and MARKER in script.read_text(errors="replace")
    except OSError:
        return False


def plan(argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> Plan | None:
    """The command the script would exec, or None when it did not say one (it failed, timed
    out or wrote nothing readable)."""
    with tempfile.TemporaryDirectory(prefix="hpsys-plan-") as folder:
        written = Path(folder, "plan")
        try:
            done = subprocess.run(list(argv), cwd=cwd, env={**env, MARKER: str(written)},
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=PLAN_TIMEOUT_S)
            fields = written.read_bytes().split(b"\0") if done.returncode == 0 else []
        except (OSError, subprocess.SubprocessError):
            return None
    try:
        count = int(fields[1])
    except (IndexError, ValueError):
        return None
    said = tuple(os.fsdecode(f) for f in fields[2:2 + count])
    if len(said) != count or not said:
        return None
    pairs = (os.fsdecode(f).partition("=") for f in fields[2 + count:] if b"=" in f)
    return Plan(os.fsdecode(fields[0]), said,
                {key: value for key, _, value in pairs if key and key != MARKER})
