"""Model families and their registry. Importing this package loads no TensorFlow."""
from edgecls.models.registry import (
    ModelError,
    ModelInfo,
    count_params,
    create,
    get_info,
    list_models,
    register,
)

__all__ = ["register", "create", "list_models", "count_params", "get_info", "ModelInfo", "ModelError"]
