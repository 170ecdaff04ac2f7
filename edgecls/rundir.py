"""Transitional alias: the run directory is :class:`edgecls.run.Run` (this module goes once nothing imports it)."""
from edgecls.run import Run as RunDir

__all__ = ["RunDir"]
