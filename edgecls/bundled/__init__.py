"""Package data: the recipes and device recipes shipped with edgecls (YAML only, no code).

They live inside the package so that a wheel carries them; a checkout shows
them at its top too (``recipes`` and ``devices`` there are symlinks to these
folders), so ``edgecls train recipes/digits.yaml`` works from the repository.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def folder(kind: str) -> Path:
    """The bundled folder ``recipes`` or ``devices``, found through importlib.resources.

    A path, not a Traversable: the loaders name ``file:line`` in their errors.
    pip installs packages as files; from a zip import the path is not a folder
    and the loaders simply find no bundled files there.
    """
    return Path(str(resources.files(__name__) / kind))
