"""Text from logs made safe to print: a training log may hold terminal escape sequences (colours,
cursor moves, a screen clear, an OSC that sets the pane title) and tqdm's carriage returns.
Everything the runner shows from a log goes through `printable` first."""

from __future__ import annotations

import re

# ESC [ ... final (CSI); ESC ] ... BEL or ESC \ (OSC, also DCS/PM/APC/SOS strings; one left
# unterminated ends at the line's end); ESC + one char (the other escapes); their 8-bit C1 forms.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?")
# every other C0 control but tab and newline, DEL and the C1 range
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str | None) -> str:
    """`text` without escape sequences and control characters (tab and newline kept); of a
    line that carriage returns rewrote (a progress bar), only what followed the last one."""
    if not text:
        return ""
    text = _ESCAPES.sub("", text)
    lines = []
    for line in text.split("\n"):
        line = line.rstrip("\r")  # a CRLF line ending is no rewrite
        lines.append(line.rsplit("\r", 1)[-1])
    return _CONTROLS.sub("", "\n".join(lines))
