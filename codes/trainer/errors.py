"""Errors caused by the user's input: reported as one line with exit code 2, never a traceback."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterable

EXIT_BAD_INPUT = 2


class UserInputError(Exception):
    """Base of every error the user can fix by changing a file, a flag or an override."""

    exit_code = EXIT_BAD_INPUT

    def one_line(self) -> str:
        """The message on a single line, so the runner's log tail shows all of it."""
        return " ".join(str(self).split())


class ConfigError(UserInputError):
    """The config file or an override is missing, malformed, unknown or of the wrong type."""


class DataError(UserInputError):
    """The data folder, a CSV or the labels do not match the competition layout."""


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean: a, b?)' hint for an unknown name, or '' when nothing is close."""
    pool = list(choices)
    # An abbreviation first ('Cosine' for CosineAnnealingLR), then spelling mistakes.
    prefixed = [c for c in pool if len(word) >= 3 and c.lower().startswith(word.lower())]
    found = sorted(prefixed, key=len)[:n]
    found += difflib.get_close_matches(word, pool, n=n, cutoff=0.6)
    if not found:
        lowered = {c.lower(): c for c in pool}
        found = [lowered[m] for m in difflib.get_close_matches(word.lower(), lowered, n=n)]
    found = list(dict.fromkeys(found))[:n]
    return f" (did you mean: {', '.join(found)}?)" if found else ""


def unknown_name(key: str, noun: str, value: object, known: Iterable[str]) -> str:
    """'optimizer_name: unknown optimizer 'x' (did you mean: ...?)': one wording for the config
    check and the builders."""
    return f"{key}: unknown {noun} {value!r}{close_matches(str(value), known)}"


def exit_code_of(action: Callable[[], int]) -> int:
    """Run a command; bad input becomes one `error:` line on stderr and exit code 2."""
    try:
        return action()
    except UserInputError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr, flush=True)
        return exc.exit_code
