"""Export to TFLite (LiteRT): conversion (bytes), metadata, op report, parity, and the export stage."""

from edgecls.api import callable_package as _callable_package

_callable_package(__name__, "export")  # edgecls.export(...) is the public API function (edgecls/api.py)
