"""Model families and their registry. Importing this package loads no TensorFlow.

``edgecls.models.transfer`` (pretrained weights, flattening, freezing, new heads)
is imported on its own: it is the trainer's, not the registry's.
"""
from edgecls.models.macs import count_macs
from edgecls.models.registry import (
    ModelError,
    ModelInfo,
    count_params,
    create,
    get_info,
    list_models,
    register,
)

__all__ = ["register", "create", "list_models", "count_params", "count_macs", "get_info", "ModelInfo", "ModelError"]
