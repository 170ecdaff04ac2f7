"""Training: strategy (the only place a tf.distribute.Strategy is built), trainer, callbacks.

Importing this package does not import TensorFlow; ``edgecls.train.trainer`` does.
"""

from edgecls.api import callable_package as _callable_package

_callable_package(__name__, "train")  # edgecls.train(...) is the public API function (edgecls/api.py)
