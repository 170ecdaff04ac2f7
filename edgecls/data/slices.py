"""Subgroups ("slices") of a data set from a CSV file, for per-slice metrics.

The CSV has a header. Its first column names an image, the others are
attributes (one slice per distinct value)::

    image,camera,lighting
    cats/001.jpg,phone,indoor
    17,dslr,outdoor

An image is named by its path exactly as the source stores it, by its path
relative to the folder source's ``path`` (a csv source's: the CSV's folder),
by an absolute path, or by its integer index in the source's order (the only
way for array sources such as shapes, digits, keras; for tfrecord, the index
among the records kept). Images
the CSV does not list get "" (in no slice). The file is read with the csv
module as text; nothing in it is evaluated.
"""
from __future__ import annotations

import csv
import io
import os
import unicodedata
from typing import Mapping, Optional

import numpy as np

from edgecls.data.sources import DataError, Examples


def _name_problem(name: str) -> Optional[str]:
    """Why a header cell cannot name an attribute (it becomes ``slice_<name>`` in test.npz), or None."""
    if not name:
        return "is empty"
    if any(ch in "/\\" or unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        return "contains a slash or a control character"
    return None


class _Resolver:
    """Finds the example index a CSV cell names."""

    def __init__(self, examples: Examples, source_options: Optional[Mapping]):
        self.count = len(examples)
        self.exact: dict[str, int] = {}
        self.absolute: dict[str, int] = {}
        self.relative: dict[str, int] = {}
        self.skipped = {name for name, _ in examples.skipped}
        self.root: Optional[str] = None
        images = examples.images
        if isinstance(images, list) and images and isinstance(images[0], str):
            root = (source_options or {}).get("path")
            self.root = os.path.abspath(os.path.expanduser(str(root))) if root else None
            if self.root and os.path.isfile(self.root):  # a csv source's listing: its rows are relative to its folder
                self.root = os.path.dirname(self.root)
            for i, path in enumerate(images):
                self.exact[path] = i
                self.absolute[os.path.normcase(os.path.abspath(path))] = i
                if self.root:
                    self.relative[os.path.normcase(os.path.normpath(os.path.relpath(path, self.root)))] = i

    def __call__(self, cell: str) -> Optional[int]:
        """The index, or None for an image the source skipped as unreadable; KeyError/IndexError if unknown."""
        if cell in self.exact:
            return self.exact[cell]
        if self.exact:
            key = os.path.normcase(os.path.normpath(cell))
            if key in self.relative:
                return self.relative[key]
            key = os.path.normcase(os.path.abspath(os.path.expanduser(cell)))
            if key in self.absolute:
                return self.absolute[key]
            if cell in self.skipped or (self.root and os.path.join(self.root, cell) in self.skipped):
                return None
        if cell.isascii() and cell.isdigit():
            index = int(cell)
            if index >= self.count:
                raise IndexError(f"index {index} is out of range: the data has {self.count} images "
                                 f"(0..{self.count - 1})")
            return index
        if self.exact:
            raise KeyError(f"{cell!r} is not an image of the data source (give its path as the source "
                           "lists it, relative to the folder's path, or absolute)")
        raise KeyError(f"{cell!r} is not an image index; this source's images are named by their "
                       "index 0..N-1 in the source's order")


def load_slice_csv(path: str, examples: Examples, source_options: Optional[Mapping] = None
                   ) -> dict[str, np.ndarray]:
    """attribute -> str array with one value per image of ``examples`` ("" for images not listed).

    ``source_options``: the data source's options (a folder source's ``path``
    lets the CSV name images relative to it). Raises DataError, one line with
    the file and line, for a missing or empty file, a header without an
    attribute column, a row with too few or too many cells, an unknown image,
    an index out of range or an image listed twice.
    """
    where = os.fspath(path)
    try:
        with open(os.path.expanduser(where), newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError(f"slices CSV {where} not found; fix data.slices in the recipe") from None
    except IsADirectoryError:
        raise DataError(f"slices CSV {where} is a folder, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"slices CSV {where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"slices CSV {where} cannot be read ({exc.strerror or exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise DataError(f"slices CSV {where} is empty; give a header (image, then attribute columns) "
                            "and one row per image")
        header = [cell.strip() for cell in header]
        line = reader.line_num
        if len(header) < 2:
            raise DataError(f"{where}:{line}: the header has {len(header)} column; give an image column "
                            "then at least one attribute column")
        names = header[1:]
        for name in names:
            problem = _name_problem(name)
            if problem:
                raise DataError(f"{where}:{line}: attribute column name {name!r} {problem}")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DataError(f"{where}:{line}: attribute column {dup!r} appears twice in the header")
        resolve = _Resolver(examples, source_options)
        values = [[""] * len(examples) for _ in names]
        seen: dict[int, int] = {}
        rows = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            line = reader.line_num
            if len(row) != len(header):
                raise DataError(f"{where}:{line}: {len(row)} values but the header has {len(header)} "
                                f"columns ({', '.join(header)})")
            cell = row[0].strip()
            try:
                index = resolve(cell)
            except (KeyError, IndexError) as exc:
                raise DataError(f"{where}:{line}: {exc.args[0]}") from None
            rows += 1
            if index is None:  # skipped as unreadable by the source (it warned): nothing to slice
                continue
            if index in seen:
                raise DataError(f"{where}:{line}: image {cell!r} is already listed on line {seen[index]}")
            seen[index] = line
            for column, cell_value in zip(values, row[1:]):
                column[index] = cell_value.strip()
    except csv.Error as exc:
        raise DataError(f"{where}:{reader.line_num}: not valid CSV ({exc})") from None
    if rows == 0:
        raise DataError(f"slices CSV {where} has a header but no rows; list one image per row")
    return {name: np.array(column, dtype=str) for name, column in zip(names, values)}
