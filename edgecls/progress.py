"""Progress bars for long work (decoding a folder, calibrating int8 export, benchmarking).

One rule for every bar: tqdm draws on stderr only when stderr is a terminal and
the user did not ask for quiet (``edgecls --quiet`` or ``EDGECLS_QUIET=1``).
Off a terminal nothing is drawn: logs and CI output stay one line per step.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Turn every bar off (``--quiet``) or back on (where stderr is a terminal)."""
    global _quiet
    _quiet = bool(quiet)


def enabled() -> bool:
    """Whether bars are drawn now: a terminal on stderr, and neither --quiet nor EDGECLS_QUIET."""
    if _quiet or os.environ.get("EDGECLS_QUIET", "") not in ("", "0"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it") -> Any:
    """A tqdm bar over ``iterable`` (or, without one, a bar to ``update(n)``); a silent one when not enabled().

    The bar leaves no line behind when done (``leave=False``): the one-line log of the step says the result.
    """
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True,
                disable=not enabled())
