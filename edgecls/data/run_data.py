"""A recipe's data as every stage sees it: the source, the saved split, datasets and arrays.

Training makes the split and saves it in the run directory; compression,
export and benchmarks load that same split, so every stage tests on the very
same images.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from edgecls.data.sources import Examples, load_source
from edgecls.data.splits import load_split, save_split
from edgecls.data.splits import make_split as new_split  # load_run_data has a make_split flag
from edgecls.errors import StageError
from edgecls.recipe.schema import Recipe
from edgecls.recipe.typed import to_plain
from edgecls.run import Run

log = logging.getLogger("edgecls.data")


@dataclass
class RunData:
    recipe: Recipe
    examples: Examples
    split: dict[str, np.ndarray]
    how: dict[str, str] = field(default_factory=dict)  # how the split was made (splits.make_split), for split.json
    _slices: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.examples.class_names

    @property
    def num_classes(self) -> int:
        return self.examples.num_classes

    def _geometry(self) -> dict:
        d = self.recipe.data
        return dict(image_size=d.image_size, channels=d.channels, mean=d.normalize.mean, std=d.normalize.std,
                    resize=d.resize)

    def save_split(self, path) -> None:
        save_split(path, self.split, self.examples, how=self.how)

    def evaluate(self, model, batch_size: int = 256) -> dict:
        """Test-split metrics of a Keras model (metrics.classification_report: the keys every record holds)."""
        from edgecls import metrics

        x_test, y_test = self.arrays("test")
        probs = model.predict(x_test, batch_size=batch_size, verbose=0)
        return metrics.classification_report(y_test, probs, self.class_names)

    def _all_slices(self) -> dict[str, np.ndarray]:
        """attribute -> str per image of the whole source: its own attributes, then the recipe's
        ``data.slices`` CSV columns (a CSV column overrides a source attribute of the same name)."""
        if self._slices is None:
            merged = {name: np.asarray(values, dtype=str) for name, values in (self.examples.attributes or {}).items()}
            csv_path = self.recipe.data.slices
            if csv_path:
                from edgecls.data.slices import load_slice_csv

                options = to_plain(self.recipe.data.options) if self.recipe.data.options is not None else {}
                merged.update(load_slice_csv(csv_path, self.examples, options))
            self._slices = merged
        return self._slices

    def slices(self, part: str) -> dict[str, np.ndarray]:
        """attribute -> str array, one value per image of ``part`` ("" = in no slice of it)."""
        return {name: values[self.split[part]] for name, values in self._all_slices().items()}

    def boxes(self, part: str) -> np.ndarray | None:
        """float32 (n, 4) object boxes [x0, y0, x1, y1] (fractions of the side) of ``part``, or None."""
        if self.examples.boxes is None:
            return None
        return np.asarray(self.examples.boxes, dtype=np.float32)[self.split[part]]

    def test_annotations(self) -> dict[str, np.ndarray]:
        """What export adds to test.npz: ``slice_<attribute>`` str arrays and ``boxes`` (when known),
        in the test split's order; plain arrays, savez-able with allow_pickle=False."""
        out = {f"slice_{name}": values for name, values in self.slices("test").items()}
        boxes = self.boxes("test")
        if boxes is not None:
            out["boxes"] = boxes
        return out

    def labels(self, part: str) -> np.ndarray:
        return self.examples.labels[self.split[part]]

    def arrays(self, part: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalized float32 images and int labels of one split part (for evaluation, calibration)."""
        from edgecls.data.pipeline import preprocess_numpy

        idx = self.split[part] if limit is None else self.split[part][:limit]
        return preprocess_numpy(self.examples, idx, **self._geometry()), self.examples.labels[idx]

    def pixels(self, part: str, limit: int | None = None, channels: int | None = None) -> np.ndarray:
        """Resized uint8 images before normalization: what a camera or an image file gives a device."""
        from edgecls.data.pipeline import decode_batch

        d = self.recipe.data
        idx = self.split[part] if limit is None else self.split[part][:limit]
        return decode_batch(self.examples, idx, image_size=d.image_size, channels=channels or d.channels,
                            resize=d.resize)

    def dataset(self, part: str, *, training: bool, batch_size: int):
        """A batched tf.data pipeline of (normalized images, one-hot labels)."""
        from edgecls.data.pipeline import make_dataset

        from edgecls._tf import tf

        d = self.recipe.data
        ds = make_dataset(self.examples, self.split[part], batch_size=batch_size, training=training,
                          augment=d.augment if training else None, seed=self.recipe.seed, cache=d.cache,
                          num_classes=self.num_classes, **self._geometry())
        # Every source reaches tf.data as an index list, not as files, so there is no file reader for
        # the FILE policy to split: shard by data, said explicitly (AUTO would warn and then do this).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)


def load_run_data(recipe: Recipe, run: Run, *, make_split: bool = False, write: bool = True,
                  fresh: bool = False) -> RunData:
    """Load the recipe's source and the run's split.

    ``make_split``: make (and, with ``write``, save) the split when the run has
    none yet; only training does that. Later stages need the saved one.
    ``fresh`` (train --force): make a new split even if one is saved (the caller saves it later).
    """
    d = recipe.data
    t0 = time.perf_counter()
    examples = load_source(d.source, to_plain(d.options) if d.options is not None else {}, seed=recipe.seed)
    log.info("data: %d images, %d classes from '%s' (%.1f s)", len(examples), examples.num_classes, d.source,
             time.perf_counter() - t0)
    how: dict[str, str] = {}
    if run.split.exists() and not fresh:
        split = load_split(run.split)
        if max((int(v.max()) for v in split.values() if len(v)), default=-1) >= len(examples):
            raise StageError(f"{run.split} does not fit the data ({len(examples)} images): "
                             "the source changed since training; train again with --force")
    elif make_split:
        split, how = new_split(examples, validation=d.splits.validation, test=d.splits.test,
                               seed=recipe.seed, train_per_class=d.splits.train_per_class)
        log.info("split: %d train, %d validation (%s), %d test (%s)", len(split["train"]),
                 len(split["validation"]), how["validation_split"], len(split["test"]), how["test_split"])
        if d.splits.train_per_class:
            log.info("few-shot: %d training images per class", d.splits.train_per_class)
        if write:
            save_split(run.split, split, examples, how=how)
    else:
        raise StageError(f"{run.split} not found: run `edgecls train` first")
    return RunData(recipe, examples, split, how)
