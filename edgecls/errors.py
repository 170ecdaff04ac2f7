"""Errors meant for people: the CLI prints ``str(err)`` on one line and exits with ``exit_code``.

Anything that is the user's mistake (a recipe, an image, a model file, a
device) raises a subclass of :class:`EdgeclsError`; anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations


def first_line(err: BaseException, *, prefer: str | None = None, limit: int = 300) -> str:
    """The first non-blank line of an exception's message (its type name when the message is empty).

    ``prefer``: a regular expression (case-insensitive); the first line where it matches wins, from
    the match on (a converter's line naming an unsupported op, TensorFlow's "Feature: ..." cause).
    The one helper for turning a library's multi-line error into the one line a user reads.
    """
    import re

    text = getattr(err, "message", None) or str(err)  # TensorFlow's OpError keeps the bare message here
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if prefer:
        found = [m.string[m.start():] for m in (re.search(prefer, ln, re.I) for ln in lines) if m]
        lines = found + lines
    return (lines[0] if lines else type(err).__name__)[:limit]


class EdgeclsError(Exception):
    """A failure the user can fix; the message says what, where and what to do."""

    exit_code = 1
    hard_exit = False  # True: TensorFlow threads wait on peers that never come; the CLI leaves with os._exit


class UsageError(EdgeclsError):
    """Wrong command-line use (a bad --set, a missing run directory argument...)."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe that does not validate. Formats as ``file:line: key.path: message``."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None, key: str | None = None):
        self.message, self.source, self.line, self.key = message, source, line, key
        where = ""
        if source:
            where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


class StageError(EdgeclsError):
    """A stage cannot run because its input is missing or its state is inconsistent."""
