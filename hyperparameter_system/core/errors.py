"""The one error type for bad input: the CLI prints it as one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

EXIT_BAD_INPUT = 2


class HpsysError(Exception):
    """Bad input, told as `<where>: <what was expected>` so the user can fix it in one look."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def close_match(word: str, choices: Iterable[str],
                normalize: Callable[[str], str] = str) -> str:
    """A ` (did you mean 'x'?)` suffix when a close match exists, else ''. `normalize` compares
    names as their consumer does (e.g. ignoring case) and the first choice of a form is shown."""
    forms: dict[str, str] = {}
    for choice in choices:
        forms.setdefault(normalize(str(choice)), str(choice))
    found = difflib.get_close_matches(normalize(str(word)), list(forms), n=1, cutoff=0.6)
    return f" (did you mean '{forms[found[0]]}'?)" if found else ""


def choices_hint(word: str, choices: Iterable[str]) -> str:
    """`expected one of a, b, c` plus the close match: for unknown names on the command line."""
    listed = sorted(str(c) for c in choices)
    return f"expected one of {', '.join(listed)}{close_match(word, listed)}"
