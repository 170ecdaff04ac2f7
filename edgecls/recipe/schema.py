"""The recipe: frozen, validated types. One dataclass per section.

Every field says what it means (``help``) and what it accepts. Types and
ranges are checked on construction (``@config``), from YAML and from Python
alike; ``__post_init__`` checks what spans fields. Every int has an upper bound
and every float must be finite: a recipe number a library cannot take is a
recipe error, not a traceback or a NaN model. Later stages (compress, export,
bench) add their sections here.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional, Union

from edgecls.data.shapes import SHAPES
from edgecls.data.sources import class_name_problem
from edgecls.data.splits import DEFAULT_TEST
from edgecls.recipe.typed import config, spec

# Bounds shared by many fields: far beyond any real use, well inside what the libraries accept.
MAX_EPOCHS = 100_000
MAX_COUNT = 10_000_000  # images, samples, steps
SEED_MAX = 2**32 - 1  # numpy's legacy seeding (keras.utils.set_random_seed) takes 0..2**32-1


# --- data -------------------------------------------------------------------------

@config
class DigitsOptions:
    """scikit-learn's load_digits: 1,797 real 8x8 handwritten digits."""
    classes: Optional[tuple[int, ...]] = spec(None, help="digits to keep, e.g. [0, 1, 2, 3, 4] (default: all ten)")

    def __post_init__(self):
        if self.classes is not None:
            bad = [c for c in self.classes if not 0 <= c <= 9]
            if bad:
                raise ValueError(f"classes: {bad[0]} is not a digit (0..9)")
            if len(set(self.classes)) < 2:
                raise ValueError("classes: needs at least 2 different digits")


@config
class ShapesOptions:
    image_size: int = spec(64, ge=8, le=1024, help="side of the generated images in pixels")
    classes: tuple[str, ...] = spec(("circle", "square", "triangle", "star", "cross", "ring"),
                                    help=f"shapes to draw, any of {', '.join(SHAPES)}")
    count: int = spec(1200, ge=2, le=1_000_000, help="total images, balanced over classes")
    seed: int = spec(0, ge=0, le=SEED_MAX, help="generator seed; the same seed draws the same images")

    def __post_init__(self):
        bad = [c for c in self.classes if c not in SHAPES]
        if bad:
            raise ValueError(f"classes: unknown shape '{bad[0]}'; known: {', '.join(SHAPES)}")
        if len(set(self.classes)) < 2:
            raise ValueError("classes: needs at least 2 different shapes")


@config
class FolderOptions:
    path: str = spec(help="folder with one sub-folder of images per class (JPEG, PNG, BMP, GIF), "
                          "or with train/, val/ (or validation/) and test/ folders of them")
    on_bad_file: Literal["skip", "fail"] = spec("skip", help="corrupt or non-image files: list and skip, or fail the run")
    layout: Literal["auto", "classes", "split"] = spec(
        "auto", help="classes: every sub-folder is a class; split: sub-folders train/, val/, test/ hold the class "
                     "folders and are the splits; auto: split when every sub-folder is named so")


@config
class CsvOptions:
    path: str = spec(help="CSV file, one image per row: path,label[,split] (a header row of those names is "
                          "optional); paths relative to the CSV's folder, split train, val or test")
    on_bad_file: Literal["skip", "fail"] = spec("skip", help="corrupt or non-image files: list and skip, or fail the run")


@config
class TfrecordOptions:
    path: str = spec(help="a TFRecord file, a folder of them, or a glob")
    image_key: str = spec("image/encoded", help="feature holding the encoded image bytes")
    label_key: str = spec("image/class/label", help="int64 feature holding the class index")
    text_key: str = spec("image/class/text", help="optional bytes feature holding the class name")
    class_names: Optional[tuple[str, ...]] = spec(None, help="class names by index (else read from text_key)")

    def __post_init__(self):
        for i, name in enumerate(self.class_names or ()):
            problem = class_name_problem(name)
            if problem:
                raise ValueError(f"class_names[{i}]: class name {name!r} {problem}")


@config
class KerasOptions:
    dataset: Literal["mnist", "fashion_mnist", "cifar10", "cifar100"] = spec("mnist", help="keras.datasets set")
    path: Optional[str] = spec(None, help="folder holding the files keras would download (for offline machines)")


@config
class TfdsOptions:
    name: str = spec(help="TFDS data set name, e.g. 'tf_flowers'")
    split: Optional[str] = spec(
        None, help="TFDS split to read, e.g. 'train[:50%]' (then splits.test: official falls back to a fraction); "
                   "default: the set's own train, validation and test splits")
    data_dir: Optional[str] = spec(None, help="TFDS data directory")
    image_key: str = spec("image")
    label_key: str = spec("label")


SOURCE_OPTIONS = {"digits": DigitsOptions, "shapes": ShapesOptions, "folder": FolderOptions, "csv": CsvOptions,
                  "tfrecord": TfrecordOptions, "keras": KerasOptions, "tfds": TfdsOptions}


@config
class Normalize:
    mean: tuple[float, ...] = spec((0.5,), help="per-channel mean, in 0..1 pixel units (one value or one per channel)")
    std: tuple[float, ...] = spec((0.5,), help="per-channel std, in 0..1 pixel units")

    def __post_init__(self):
        if any(s <= 0 for s in self.std):
            raise ValueError("std: every value must be > 0")


@config
class Splits:
    validation: float = spec(
        0.1, ge=0.0, lt=1.0,
        help="fraction of each class held out for validation (of the train part, when the source's own test split "
             "is used; a source's own validation split, e.g. a val/ folder, is used as it is)")
    test: Union[float, Literal["official"]] = spec(
        "official", gt=0.0, lt=1.0,
        help="'official': the source's own test split (keras and tfds sets, a test/ folder, a CSV's split column), "
             "else 0.2 of each class; a fraction: that much of each class, re-split from every image")
    train_per_class: Optional[int] = spec(
        None, ge=1, le=MAX_COUNT,
        help="few-shot: train on only this many images per class (drawn by the seed; test is unchanged)")

    def __post_init__(self):
        if self.test != "official" and self.validation + self.test >= 1.0:
            raise ValueError("test: validation + test must leave data to train on (sum < 1)")
        if self.test == "official" and self.validation + DEFAULT_TEST >= 1.0:  # a source without its own test split
            raise ValueError(f"validation: with test 'official', a source without its own test split holds out "
                             f"{DEFAULT_TEST:g} for test; validation + {DEFAULT_TEST:g} must leave data to train on "
                             "(sum < 1)")


@config
class Augment:
    flip: Literal["none", "horizontal", "vertical", "both"] = spec("none", help="random flips")
    rotation: float = spec(0.0, ge=0.0, le=1.0, help="max rotation, as a fraction of a full turn")
    zoom: float = spec(0.0, ge=0.0, lt=1.0, help="max zoom in or out, as a fraction")
    translate: float = spec(0.0, ge=0.0, lt=1.0, help="max shift, as a fraction of the size")
    contrast: float = spec(0.0, ge=0.0, lt=1.0, help="max contrast change, as a fraction")
    brightness: float = spec(0.0, ge=0.0, lt=1.0, help="max brightness change, as a fraction of the range")
    random_crop: bool = spec(False, help="pad by 1/8 of the size and crop back at a random place")
    erasing: float = spec(0.0, ge=0.0, le=1.0, help="probability of erasing a random rectangle")
    mixup: float = spec(0.0, ge=0.0, help="mixup alpha (0 = off)")
    cutmix: float = spec(0.0, ge=0.0, help="cutmix alpha (0 = off)")
    perspective: float = spec(0.0, ge=0.0, lt=0.5,
                              help="random projective warp: max corner shift, as a fraction of the size")
    hue: float = spec(0.0, ge=0.0, le=0.5, help="max hue shift, as a fraction of the colour wheel")
    saturation: float = spec(0.0, ge=0.0, lt=1.0, help="max saturation change, as a fraction")


@config
class DataConfig:
    source: Literal["digits", "shapes", "folder", "csv", "tfrecord", "keras", "tfds"] = spec(
        help="where images come from")
    options: Any = spec(None, variant_of="source", variants=SOURCE_OPTIONS, help="options of the source")
    image_size: Union[int, tuple[int, int]] = spec(help="model input size: N or [height, width]")
    channels: Literal[1, 3] = spec(3, help="1 (grayscale) or 3 (RGB)")
    resize: Literal["stretch", "crop"] = spec("stretch", help="aspect policy: stretch, or centre-crop to fit")
    normalize: Normalize = spec(default_factory=Normalize)
    splits: Splits = spec(default_factory=Splits)
    augment: Augment = spec(default_factory=Augment)
    cache: bool = spec(True, help="cache decoded images in memory after the first epoch")
    slices: Optional[str] = spec(
        None, help="CSV of subgroups for bench's per-slice metrics: an image path or index, then attribute columns")

    def __post_init__(self):
        size = (self.image_size, self.image_size) if isinstance(self.image_size, int) else self.image_size
        if min(size) < 4 or max(size) > 2048:
            raise ValueError("image_size: must be between 4 and 2048 pixels")
        object.__setattr__(self, "image_size", tuple(size))
        for key in ("hue", "saturation"):  # a gray image has neither: the setting would silently do nothing
            if self.channels == 1 and getattr(self.augment, key):
                raise ValueError(f"augment.{key}: colour shifts need channels: 3 (channels is 1)")
        for key in ("mean", "std"):
            if len(getattr(self.normalize, key)) not in (1, self.channels):
                raise ValueError(f"normalize.{key}: needs 1 or {self.channels} values for {self.channels} channel(s)")


# --- model ----------------------------------------------------------------------------

@config
class ModelConfig:
    name: Optional[str] = spec(None, help="a registered model (edgecls models lists them)")
    options: dict[str, Any] = spec(default_factory=dict, help="builder options, e.g. width, dropout")
    weights: Optional[str] = spec(
        None, help="start from 'imagenet' (keras.applications weights) or a local .h5/.keras file, by layer name")
    backbone: Optional[str] = spec(
        None, help="few-shot/transfer: a trained run directory (or .keras file); a new head is trained on its features")

    def __post_init__(self):
        if self.name is None and self.backbone is None:
            raise ValueError("name: a model needs a name (edgecls models lists them) or a backbone run to build on")
        if self.name is not None and self.backbone is not None:
            raise ValueError("backbone: a backbone run brings its own architecture; leave model.name out")
        if self.weights is not None and self.backbone is not None:
            raise ValueError("weights: give weights or backbone, not both (a backbone run brings its own weights)")
        if self.backbone is not None and set(self.options) - {"dropout"}:
            extra = sorted(set(self.options) - {"dropout"})[0]
            raise ValueError(f"options: '{extra}' cannot change a backbone run's architecture; only dropout "
                             "(of the new head) applies")

    @property
    def label(self) -> str:
        """What to call the model in logs and metadata."""
        return self.name or f"head on {self.backbone}"


# --- training ---------------------------------------------------------------------------

@config
class Optimizer:
    name: Literal["sgd", "adam", "adamw", "rmsprop"] = spec("adam")
    learning_rate: float = spec(1e-3, gt=0.0, help="peak learning rate (after warm-up)")
    momentum: float = spec(0.9, ge=0.0, lt=1.0, help="SGD and RMSProp momentum")
    nesterov: bool = spec(False, help="Nesterov momentum (SGD)")
    weight_decay: float = spec(0.0, ge=0.0, help="decoupled weight decay")
    clipnorm: Optional[float] = spec(None, gt=0.0, help="clip each gradient's norm")


@config
class Schedule:
    name: Literal["constant", "step", "cosine"] = spec("constant")
    warmup_epochs: float = spec(0.0, ge=0.0, le=MAX_EPOCHS, help="linear warm-up from 0 over this many epochs")
    step_epochs: int = spec(10, ge=1, le=MAX_EPOCHS,
                            help="step: multiply the rate by step_factor every this many epochs")
    step_factor: float = spec(0.1, gt=0.0, le=1.0)
    min_lr_ratio: float = spec(0.0, ge=0.0, le=1.0, help="cosine: final rate as a fraction of the peak")


@config
class EarlyStopping:
    patience: int = spec(0, ge=0, le=MAX_EPOCHS, help="epochs without improvement before stopping (0 = off)")
    monitor: str = spec("val_accuracy")
    min_delta: float = spec(0.0, ge=0.0)
    restore_best: bool = spec(True, help="keep the best epoch's weights")


@config
class FinetunePhase:
    epochs: int = spec(ge=1, le=MAX_EPOCHS, help="epochs of this phase")
    unfreeze: Union[int, Literal["all"]] = spec(
        0, le=100_000,
        help="layers with weights trained before the head: 0 = head only, N = also the backbone's last N, 'all'")
    learning_rate: Optional[float] = spec(
        None, gt=0.0, help="peak rate of this phase (default: train.optimizer's for the first, a tenth of it after)")

    def __post_init__(self):
        if not isinstance(self.unfreeze, str) and self.unfreeze < 0:
            raise ValueError("unfreeze: must be >= 0 or 'all'")


@config
class TrainConfig:
    epochs: int = spec(10, ge=1, le=MAX_EPOCHS, help="epochs (with finetune: unused, each phase has its own)")
    batch_size: int = spec(64, ge=1, le=1_000_000, help="global batch, split over the replicas")
    optimizer: Optimizer = spec(default_factory=Optimizer)
    schedule: Schedule = spec(default_factory=Schedule)
    label_smoothing: float = spec(0.0, ge=0.0, lt=1.0)
    early_stopping: EarlyStopping = spec(default_factory=EarlyStopping)
    class_weights: Union[Literal["none", "balanced"], dict[str, float]] = spec(
        "none", help="'balanced', or a weight per class name")
    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"] = spec(
        "auto", help="tf.distribute strategy; auto = mirrored on several GPUs, one_device on one, default on CPU")
    devices: Optional[tuple[str, ...]] = spec(None, help="devices for one_device/mirrored, e.g. ['/gpu:0', '/gpu:1']")
    cpu_replicas: int = spec(
        0, ge=0, le=1024, help="split the CPU into this many logical devices (try distribution without GPUs)")
    tpu: Optional[str] = spec(None, help="TPU address for strategy tpu (none = the local/Colab TPU)")
    cluster: Literal["tf_config", "slurm"] = spec(
        "tf_config", help="multi_worker: the cluster from TF_CONFIG (Kubernetes, --worker-hosts) or from Slurm")
    join_timeout: float = spec(300.0, gt=0.0, le=7 * 86400,
                               help="multi_worker: seconds to wait for every worker to join")
    scale_lr: bool = spec(False, help="multiply the learning rate by the replica count (use with warm-up)")
    mixed_precision: Literal["auto", "on", "off"] = spec("auto", help="mixed_float16; auto = on GPUs only")
    jit_compile: bool = spec(False, help="compile the train step with XLA")
    steps_per_execution: int = spec(1, ge=1, le=MAX_COUNT, help="train steps per tf.function call")
    deterministic: bool = spec(True, help="deterministic ops: the same seed gives the same model")
    checkpoints_to_keep: int = spec(3, ge=1, le=10_000, help="per-epoch weight checkpoints kept in train/checkpoints")
    finetune: tuple[FinetunePhase, ...] = spec(
        (), help="transfer learning: phases run in order, e.g. the head with the backbone frozen, then more layers")

    def __post_init__(self):
        if isinstance(self.class_weights, dict):
            for name, weight in self.class_weights.items():
                problem = class_name_problem(name)
                if problem:
                    raise ValueError(f"class_weights: class name {name!r} {problem}")


# --- compression (tfmot) -----------------------------------------------------------------------

@config
class PruneOptions:
    schedule: Literal["polynomial", "constant"] = spec("polynomial", help="sparsity ramp (polynomial) or fixed")
    target_sparsity: float = spec(0.5, ge=0.0, lt=1.0, help="fraction of weights set to zero")
    initial_sparsity: float = spec(0.0, ge=0.0, lt=1.0, help="polynomial: sparsity at begin")
    begin: float = spec(0.0, ge=0.0, le=MAX_COUNT,
                        help="first pruning step: a step count, or a fraction of the stage if < 1")
    end: float = spec(0.7, ge=0.0, le=MAX_COUNT,
                      help="last pruning step (polynomial): a step count, or a fraction of the stage if <= 1")
    frequency: int = spec(10, ge=1, le=MAX_COUNT, help="steps between pruning updates")
    structure: Optional[str] = spec(None, help="M:N structured sparsity, e.g. '2:4'")
    policy: Optional[Literal["xnnpack"]] = spec(None, help="'xnnpack': prune only what XNNPACK's sparse kernels run faster")
    skip: tuple[str, ...] = spec((), help="layer name patterns (fnmatch) left dense")

    def __post_init__(self):
        if self.structure is not None:
            m, _, n = self.structure.partition(":")
            if not (m.isdigit() and n.isdigit() and 0 < int(m) < int(n)):
                raise ValueError("structure: expected 'M:N' with 0 < M < N, e.g. '2:4'")
        if self.schedule == "polynomial" and self.initial_sparsity > self.target_sparsity:
            raise ValueError("initial_sparsity: must not exceed target_sparsity")


@config
class ClusterOptions:
    clusters: int = spec(16, ge=2, le=256, help="number of shared weight values per layer (or per channel)")
    init: Literal["kmeans++", "linear", "density", "random"] = spec("kmeans++", help="centroid initialization")
    per_channel: bool = spec(False, help="cluster each output channel of a convolution separately")
    preserve_sparsity: bool = spec(False, help="keep pruned zeros at zero (prune, then cluster: the PCQAT path)")
    skip: tuple[str, ...] = spec((), help="layer name patterns (fnmatch) left unclustered")


@config
class QuantizeOptions:
    preserve: Literal["none", "sparsity", "clusters", "both"] = spec(
        "none", help="collaborative optimization: keep the zeros (PQAT), the clusters (CQAT) or both (PCQAT)")
    skip: tuple[str, ...] = spec((), help="layer name patterns (fnmatch) left in float")


STAGE_OPTIONS = {"prune": PruneOptions, "cluster": ClusterOptions, "quantize": QuantizeOptions}


@config
class CompressStage:
    name: str = spec(plain_name=True, help="stage name; saved as compress/<name>.keras")
    kind: Literal["prune", "cluster", "quantize"] = spec(help="prune | cluster | quantize (QAT)")
    source: Optional[str] = spec(None, plain_name=True,
                                 help="'train' or an earlier stage's name (default: the stage before)")
    epochs: int = spec(3, ge=0, le=MAX_EPOCHS, help="fine-tuning epochs")
    learning_rate: Optional[float] = spec(None, gt=0.0, help="fine-tuning rate (default: a tenth of train's)")
    options: Any = spec(None, variant_of="kind", variants=STAGE_OPTIONS, help="options of the kind")


# --- export (TFLite / LiteRT) -----------------------------------------------------------------------

@config
class ExportVariant:
    name: str = spec(plain_name=True, help="variant name; saved as export/<name>.tflite")
    source: str = spec("train", plain_name=True, help="'train' or a compression stage's name")
    mode: Literal["float32", "float16", "dynamic", "int8", "int16x8"] = spec(help="conversion")
    input_type: Literal["float32", "uint8", "int8"] = spec(
        "float32", help="input tensor type (uint8/int8 only with mode int8)")
    output_type: Literal["float32", "uint8", "int8"] = spec("float32", help="output tensor type")
    representative_samples: int = spec(200, ge=1, le=1_000_000,
                                       help="training images used to calibrate int8/int16x8")
    per_channel: bool = spec(
        True, help="int8/int16x8: a weight scale per output channel (TFLite's default); false: one per tensor, "
                   "a smaller file for nets of many thin layers (each channel's scale and zero point cost 12 bytes)")
    calibrate: Literal["none", "temperature"] = spec(
        "none", help="temperature: fit one softmax temperature on the validation split, so scores are calibrated")
    target: Literal["tflite", "micro", "onnx"] = spec(
        "tflite", help="micro: also write export/<name>.cc/.h for TensorFlow Lite for Microcontrollers (measured "
                       "tensor arena, exact op resolver); onnx: export/<name>.onnx through tf2onnx instead")
    float_layers: Union[Literal["auto"], tuple[str, ...]] = spec(
        (), help="int8: Keras layer name patterns (fnmatch) kept in float, or auto: the quantization debugger's "
                 "worst layers, added until accuracy is within max_accuracy_drop of the float model")
    max_accuracy_drop: float = spec(0.005, ge=0.0, le=1.0,
                                    help="float_layers: auto: the validation accuracy int8 may lose (a fraction)")
    max_float_layers: int = spec(8, ge=1, le=1000, help="float_layers: auto: at most this many layers stay float")

    def __post_init__(self):
        if self.mode != "int8" and (self.input_type != "float32" or self.output_type != "float32"):
            raise ValueError(f"input_type: integer input/output needs mode int8 (mode is {self.mode})")
        if not self.per_channel and self.mode not in ("int8", "int16x8"):
            raise ValueError(f"per_channel: false needs mode int8 or int16x8 (mode is {self.mode})")
        if self.target == "micro" and self.mode != "int8":
            raise ValueError(f"target: micro needs mode int8 (TFLite Micro runs integer models); mode is {self.mode}")
        if self.target == "onnx" and self.mode != "float32":
            raise ValueError(f"target: onnx exports the float model; it needs mode float32 (mode is {self.mode})")
        if self.float_layers and self.mode != "int8":
            raise ValueError(f"float_layers: keeping layers in float inside an int8 model needs mode int8 "
                             f"(mode is {self.mode})")
        if self.float_layers != "auto" and any(not p.strip() for p in self.float_layers):
            raise ValueError("float_layers: an empty pattern; give Keras layer names or fnmatch patterns, or auto")


# --- the recipe -------------------------------------------------------------------------------

@config
class Recipe:
    name: str = spec(plain_name=True, help="run name; the default run directory is runs/<name>")
    data: DataConfig = spec()
    model: ModelConfig = spec()
    description: str = spec("", help="one line shown by `edgecls recipes`")
    seed: int = spec(0, ge=0, le=SEED_MAX, help="seed for splits, shuffling, initialization and augmentation")
    train: TrainConfig = spec(default_factory=TrainConfig)
    compress: tuple[CompressStage, ...] = spec((), help="compression stages, run in order by `edgecls compress`")
    export: tuple[ExportVariant, ...] = spec((), help="TFLite variants made by `edgecls export`")

    @classmethod
    def load(cls, path_or_name: str | os.PathLike, overrides: Sequence[str] = ()) -> Recipe:
        """Read a recipe file, or a bundled recipe by name ("digits"); ``overrides`` as ``--set`` takes them."""
        from edgecls.recipe.loader import load_recipe  # the loader imports this module

        return load_recipe(path_or_name, overrides)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], overrides: Sequence[str] = ()) -> Recipe:
        """Validate a plain mapping (as a recipe file would hold it), with the same checks and messages."""
        from edgecls.recipe.loader import recipe_from_dict

        return recipe_from_dict(mapping, overrides)

    def stage_source(self, index: int) -> str:
        """What compression stage ``index`` fine-tunes: its ``source``, else the stage before it, else 'train'."""
        stage = self.compress[index]
        return stage.source or (self.compress[index - 1].name if index else "train")

    def __post_init__(self):
        known = {"train"}
        for i, stage in enumerate(self.compress):
            if stage.name in known:
                raise ValueError(f"compress: stage name '{stage.name}' is used twice (or is 'train')")
            if stage.source is not None and stage.source not in known:
                raise ValueError(f"compress: stage '{stage.name}' reads '{stage.source}', which no earlier stage makes")
            known.add(stage.name)
        names = set()
        for v in self.export:
            if v.source not in known:
                raise ValueError(f"export: variant '{v.name}' reads '{v.source}'; sources: {', '.join(sorted(known))}")
            if v.name in names:
                raise ValueError(f"export: variant name '{v.name}' is used twice")
            names.add(v.name)
            if v.target == "micro" and sum(x.target == "micro" for x in self.export) > 1:
                from edgecls.export.micro import c_identifier  # the one rule for the C names

                twin = next((x for x in self.export if x is not v and x.target == "micro"
                             and c_identifier(x.name) == c_identifier(v.name)), None)
                if twin is not None:
                    raise ValueError(f"export: micro variants '{twin.name}' and '{v.name}' get the same C names "
                                     f"(g_{c_identifier(v.name)}_model): one firmware could not link both; rename one")
            if v.target == "onnx" and any(s.name == v.source and s.kind == "quantize" for s in self.compress):
                # tf2onnx lowers fake quantization to QuantizeLinear/DequantizeLinear that do not compute what
                # Keras does (a QAT small_cnn: max |difference| 0.158 in onnxruntime).
                raise ValueError(f"export: variant '{v.name}': target: onnx cannot export the QAT stage "
                                 f"'{v.source}' faithfully (tf2onnx lowers fake quantization differently); export "
                                 "the stage before it, or this stage to TFLite")
