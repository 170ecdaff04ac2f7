"""Errors meant for people: the CLI prints ``str(err)`` as ``error:`` lines and exits with ``exit_code``.

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
    """A recipe that does not validate. Formats as ``file:line: key.path: message``; several mistakes
    (:meth:`combine`) as one such line each."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None, key: str | None = None):
        self.message, self.source, self.line, self.key = message, source, line, key
        where = ""
        if source:
            where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")
        self.errors = [self]  # the mistakes this error reports, one line each (see combine)

    @staticmethod
    def combine(errors: "list[RecipeError]") -> "RecipeError":
        """One error reporting every mistake in ``errors``: one line each, by source and line.

        A single mistake comes back as it is (its message unchanged); several make an error of the
        first one's type whose message is their lines, so a user fixes them all in one pass.
        """
        flat = [e for err in errors for e in err.errors]
        if len(flat) == 1:
            return flat[0]
        rank: dict = {}
        for e in flat:
            rank.setdefault(e.source, len(rank))
        flat.sort(key=lambda e: (e.line is None, rank[e.source], e.line or 0))  # a file in line order, then --set
        combined = type(flat[0])("\n".join(str(e) for e in flat))
        combined.errors = flat
        return combined


class StageError(EdgeclsError):
    """A stage cannot run because its input is missing or its state is inconsistent."""
