"""The options of ``classify`` (and those ``info`` and ``bench`` share with it), declared once, as data.

Two command lines are built from these tables: the zipapp's argparse one
(:mod:`edgecls.runtime.cli`) and the click one (``edgecls classify`` in
:mod:`edgecls.cli`). Plain data, no click and no argparse, so the zipapp
stays small and ``edgecls --help`` stays fast (nothing here imports numpy).

Both parsers only collect strings, flags and choices; :func:`resolve` then
converts and range-checks every value and raises one :class:`UsageError`
naming the flag, so both command lines refuse a bad value with the same one
line and exit code 2.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from edgecls.errors import UsageError

# An interpreter asked for 100000 threads segfaults; no device this runs on has more cores than this.
MAX_THREADS = 256
RESIZE_POLICIES = ("stretch", "crop")  # how an image's aspect is fitted to the model's input
OUTPUT_KINDS = ("probabilities", "logits", "auto")  # what a model's first output holds ("auto": look at it)


@dataclass(frozen=True)
class Option:
    """One ``--flag``: ``kind`` is str, int (``low``..``high``), floats (1 or 3, comma-separated), source or flag."""

    flag: str
    dest: str
    help: str
    kind: str = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    metavar: str | None = None
    default_text: str | None = None  # what no value means, when the default is None ("the model's metadata")

    @property
    def help_text(self) -> str:
        """The help line with the range and the default, as both parsers show it."""
        text = self.help
        if self.kind == "int" and self.low is not None:
            text += f"; {self.low} to {self.high}" if self.high is not None else f"; {self.low} or more"
        shown = self.default_text or (None if self.default in (None, False) else self.default)
        if shown is not None:
            text += f" [default: {shown}]"
        return text

    def convert(self, value: Any) -> Any:
        """The parsed value of ``value`` (a string from the command line, or the default); UsageError if bad."""
        if value is None or self.kind == "flag":
            return value
        if self.kind == "int":
            text = str(value).strip()
            return check_int(int(text) if text.lstrip("+-").isdigit() else value, self.flag, self.low, self.high)
        if self.kind == "floats":
            return parse_floats(value, self.flag)
        if self.kind == "source":  # a camera index, a video file / URL, or "picamera2"
            text = str(value)
            return int(text) if text.isdigit() else text
        if self.choices and value not in self.choices:
            raise UsageError(f"{self.flag} must be one of {', '.join(self.choices)}, got {value!r}")
        return value


def check_int(value: Any, what: str, low: int | None = 1, high: int | None = None) -> int:
    """``value`` as an int in ``low..high`` (inclusive); else one UsageError naming ``what``."""
    number = int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        span = f"from {low} to {high}" if high is not None else f"of {low} or more"
        raise UsageError(f"{what} must be a whole number {span}, got {value!r}")
    return number


def check_threads(value: Any, what: str = "--threads") -> int:
    """Interpreter threads (or worker processes): 1..MAX_THREADS."""
    return check_int(value, what, 1, MAX_THREADS)


def parse_floats(text: Any, what: str = "value") -> tuple[float, ...] | None:
    """'127.5' or '123.7,116.3,103.5' -> a tuple of 1 or 3 floats (None stays None); UsageError otherwise."""
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        text = ",".join(str(v) for v in text)
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 3) or not all(v == v and abs(v) != float("inf") for v in values):
        raise UsageError(f"{what} takes one or three comma-separated numbers, got {text!r}")
    return values


def resolve(options: Sequence[Option], values: Mapping[str, Any]) -> dict[str, Any]:
    """dest -> converted value for each option (what a parser collected, else its default)."""
    return {o.dest: o.convert(values.get(o.dest, o.default)) for o in options}


THREADS = Option("--threads", "threads", "interpreter threads", kind="int", low=1, high=MAX_THREADS, metavar="N",
                 default_text="all cores, at most 4")
BACKEND = Option("--backend", "backend", "ai-edge-litert | tflite-runtime | tensorflow",
                 metavar="NAME", default_text="the first installed")
DELEGATE = Option("--delegate", "delegate", "xnnpack (default) | none | gpu | edgetpu | path of a delegate library "
                  "(e.g. libedgetpu.so.1)", metavar="NAME")
VERBOSE = Option("--verbose", "verbose", "show the interpreters' native log lines", kind="flag", default=False)
LABELS = Option("--labels", "labels", "labels file, one per line (overrides the model's)", metavar="FILE")
MEAN = Option("--mean", "mean", "the model takes (pixel - mean) / std", kind="floats", metavar="M[,M,M]",
              default_text="the model's metadata, else 0")
STD = Option("--std", "std", "see --mean", kind="floats", metavar="S[,S,S]",
             default_text="the model's metadata, else 1")
RESIZE = Option("--resize", "resize", "aspect policy", choices=RESIZE_POLICIES,
                default_text="the model's metadata, else stretch")
OUTPUT = Option("--output", "output_kind", "what the model outputs", choices=OUTPUT_KINDS,
                default_text="the model's metadata, else auto")
FAST_DECODE = Option("--fast-decode", "draft", "decode large JPEGs at reduced scale (much faster for photos; "
                     "pixels differ slightly)", kind="flag", default=False)

MODEL_OPTIONS = (THREADS, BACKEND, DELEGATE, VERBOSE)
PREPROCESSING = (MEAN, STD, RESIZE, OUTPUT, FAST_DECODE)

CLASSIFY = (
    Option("--top-k", "top_k", "answers per image", kind="int", default=5, low=1, metavar="K"),
    Option("--json", "as_json", "JSON lines instead of a table", kind="flag", default=False),
    LABELS,
    Option("--camera", "camera", "read frames from OpenCV camera N, a video file/URL, or picamera2 (the Raspberry "
           "Pi Camera Module, through libcamera); prints top-1 and FPS", kind="source", metavar="N|picamera2"),
    Option("--frames", "frames", "with --camera: stop after N frames", kind="int", low=1, metavar="N"),
    Option("--workers", "workers", "decoding threads that work ahead of the model", kind="int", default=1, low=1,
           high=MAX_THREADS, metavar="N"),
    Option("--interpreters", "interpreters", "N copies of the model side by side, each decoding and classifying "
           "whole images with threads/N interpreter threads: more images/s for many files on a multi-core CPU",
           kind="int", default=1, low=1, high=MAX_THREADS, metavar="N"),
    *PREPROCESSING,
    *MODEL_OPTIONS,
)
