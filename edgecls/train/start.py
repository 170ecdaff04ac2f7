"""The model a recipe starts training from: a registered architecture, pretrained weights, or a backbone run.

- ``model.name`` (+ ``options``): a fresh registered model.
- ``model.weights``: "imagenet" or a local .h5/.keras file, copied in by layer name.
- ``model.backbone``: a run directory trained by another recipe (its
  ``train/model.keras``) or a ``.keras`` file; its pooled features get a new
  head for this recipe's classes (``head_only``), the few-shot path.

Called inside the strategy's scope, so every variable lands on its replicas.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgecls.models import ModelError, create
from edgecls.recipe.schema import Recipe
from edgecls.run import Run

log = logging.getLogger("edgecls.train")


def backbone_file(spec: str) -> Path:
    """The model file a ``model.backbone`` names: a run directory's train/model.keras, or the file itself."""
    path = Path(spec).expanduser()
    if path.is_dir():
        model = Run(path).model
        if not model.is_file():
            raise ModelError(f"model.backbone: {path} holds no train/model.keras; train that recipe first "
                             f"(edgecls train RECIPE --run-dir {path})")
        return model
    if path.suffix not in (".keras", ".h5"):
        what = "no such run directory" if not path.exists() else "expected a run directory or a .keras/.h5 model file"
        raise ModelError(f"model.backbone: {spec}: {what}")
    if not path.is_file():
        raise ModelError(f"model.backbone: {path}: no such run directory or file")
    return path


def load_backbone(spec: str) -> Any:
    """The backbone model, refused with one line if the file holds a Lambda or any other code (models.loading)."""
    from edgecls.models.loading import load_keras_model

    return load_keras_model(backbone_file(spec), what="model.backbone")


def build_model(recipe: Recipe, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """The untrained (or pretrained) Keras model for ``recipe``; logs what was loaded."""
    m = recipe.model
    if m.backbone is not None:
        from edgecls.models.transfer import head_only

        backbone = load_backbone(m.backbone)
        have = tuple(backbone.input_shape[1:])
        if have != tuple(input_shape):
            raise ModelError(f"model.backbone: {m.backbone} takes input {have}, this recipe's data gives "
                             f"{tuple(input_shape)}; set data.image_size and data.channels to match")
        model = head_only(backbone, num_classes, dropout=float(m.options.get("dropout", 0.0)))
        log.info("backbone: %s (%s), new head for %d classes", m.backbone, backbone.name, num_classes)
        return model
    model = create(m.name, num_classes, input_shape, **m.options)
    if m.weights is not None:
        from edgecls.models.transfer import load_weights

        report = load_weights(model, m.weights, model_name=m.name, options=m.options)
        log.info("%s", report)
        c = input_shape[-1]
        spread = lambda values: [round(v, 6) for v in (values * c if len(values) == 1 else values)]  # noqa: E731
        want = {"mean": spread(recipe.data.normalize.mean), "std": spread(recipe.data.normalize.std)}
        if report.normalize and {k: spread(v) for k, v in report.normalize.items()} != want:
            log.warning("the %s weights expect data.normalize %s; the recipe has %s", m.weights, report.normalize, want)
    return model
