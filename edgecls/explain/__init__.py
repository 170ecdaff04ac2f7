"""Explanations of a run's models: Grad-CAM for Keras models, occlusion (the runtime's) for any variant, the
``edgecls explain`` job that puts them side by side with their agreement. Importing it loads no TensorFlow.

    import edgecls
    index = edgecls.explain("runs/digits", ["digit.png"], method="gradcam")   # writes runs/digits/explain/
"""
from edgecls.explain.gradcam import GradCam, feature_layers, grad_cam, pick_layer
from edgecls.explain.stage import METHODS, REFERENCE, Explainer

__all__ = ["METHODS", "REFERENCE", "Explainer", "GradCam", "feature_layers", "grad_cam", "pick_layer"]

from edgecls.api import callable_package as _callable_package

_callable_package(__name__, "explain")  # edgecls.explain(...) is the public API function (edgecls/api.py)
