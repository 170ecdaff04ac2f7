"""Compression stages through tensorflow-model-optimization: prune, cluster, quantize (QAT), and the runner.

Importing this package does not import TensorFlow; the technique modules do.
"""

from edgecls.api import callable_package as _callable_package

_callable_package(__name__, "compress")  # edgecls.compress(...) is the public API function (edgecls/api.py)
