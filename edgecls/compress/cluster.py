"""Weight clustering through tfmot: k shared values per layer (or per channel), sparsity kept if asked."""
from __future__ import annotations

import logging

from edgecls._tf import keras, tfmot
from edgecls.compress.weights import wrap_layers
from edgecls.errors import StageError
from edgecls.recipe.schema import ClusterOptions

log = logging.getLogger("edgecls.compress")


def _init(name: str):
    ci = tfmot().clustering.keras.CentroidInitialization
    return {"kmeans++": ci.KMEANS_PLUS_PLUS, "linear": ci.LINEAR, "density": ci.DENSITY_BASED,
            "random": ci.RANDOM}[name]


def apply(model, opts: ClusterOptions, *, total_steps: int):
    """Wrap the clusterable layers; returns (model, {"wrapped": [...], "left": {layer: reason}})."""
    cl = tfmot().clustering.keras

    def wrap(layer):
        per_channel = opts.per_channel and isinstance(layer, keras.layers.Conv2D) and not isinstance(
            layer, keras.layers.DepthwiseConv2D)
        return cl.cluster_weights(layer, number_of_clusters=opts.clusters, cluster_centroids_init=_init(opts.init),
                                  preserve_sparsity=opts.preserve_sparsity, cluster_per_channel=per_channel)

    clustered, info = wrap_layers(model, wrap, skip=opts.skip, verb="cluster")
    for name, why in info["left"].items():
        log.info("cluster: %s left unclustered (%s)", name, why)
    if not info["wrapped"]:
        raise StageError("cluster: no layer could be clustered (all skipped or unsupported)")
    return clustered, info


def callbacks(info: dict) -> list:
    return []


def strip(model):
    return tfmot().clustering.keras.strip_clustering(model)
