"""Building blocks shared by the families, made only of plain tf_keras layers.

Plain built-in layers are what tfmot's pruning and default 8-bit QAT registries
know how to wrap, and what ``keras.models.load_model`` restores without custom
objects. Only model-building code imports this module (it loads TensorFlow).
"""
from __future__ import annotations

from typing import Any

from edgecls._tf import keras

layers = keras.layers

# Keras defaults except epsilon=1e-3 (as the MobileNet/EfficientNet references use).
BN_EPSILON = 1e-3
ACTIVATIONS = ("relu", "relu6", "swish", "hard_swish")
CONSTANT_SUFFIX = "_affine"  # layers with fixed weights (never trained, never unfrozen by fine-tuning)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never dropping more than 10% (MobileNet rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1 (for the families without divisor rounding)."""
    return max(1, int(round(channels * width)))


def image_input(input_shape: tuple[int, int, int]) -> Any:
    return keras.Input(shape=input_shape, dtype="float32", name="image")


def activation(x: Any, kind: str, name: str) -> Any:
    """Apply ``kind`` as separate layers (tfmot folds Conv-BN-ReLU and quantizes Activation outputs)."""
    if kind == "relu":
        return layers.ReLU(name=name)(x)
    if kind == "relu6":
        return layers.ReLU(6.0, name=name)(x)
    if kind == "swish":
        return layers.Activation("swish", name=name)(x)
    if kind == "hard_swish":
        return layers.Multiply(name=name)([x, hard_sigmoid(x, name=f"{name}_gate")])
    raise ValueError(f"unknown activation {kind!r}; expected one of {ACTIVATIONS}")


def hard_sigmoid(x: Any, name: str) -> Any:
    """relu6(x + 3) / 6 exactly, from prunable built-in layers.

    tf_keras' own hard_sigmoid is 0.2x + 0.5 (not MobileNetV3's), and Rescaling
    or TF-op lambdas cannot be pruned; a frozen 1x1 depthwise conv computes
    x/6 + 1/2 and ReLU(max_value=1) clips it.
    """
    affine = layers.DepthwiseConv2D(
        1,
        use_bias=True,
        depthwise_initializer=keras.initializers.Constant(1.0 / 6.0),
        bias_initializer=keras.initializers.Constant(0.5),
        trainable=False,
        name=f"{name}{CONSTANT_SUFFIX}",
    )
    return layers.ReLU(1.0, name=f"{name}_clip")(affine(x))


def conv_bn(
    x: Any,
    filters: int,
    kernel: int,
    *,
    stride: int = 1,
    act: str | None = "relu",
    name: str,
    conv_name: str | None = None,
    bn_name: str | None = None,
    use_bias: bool = False,
    epsilon: float = BN_EPSILON,
    padding: str = "same",
) -> Any:
    """Conv2D -> BatchNormalization -> optional activation.

    Layers are ``{name}_conv`` and ``{name}_bn`` unless ``conv_name``/``bn_name``
    say otherwise: the families with ImageNet weights use keras.applications'
    names so those weight files load by layer name.
    """
    x = layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer="he_normal",
        name=conv_name or f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(epsilon=epsilon, name=bn_name or f"{name}_bn")(x)
    return activation(x, act, name=f"{name}_{act}") if act else x


def depthwise_bn(
    x: Any,
    kernel: int,
    *,
    stride: int,
    act: str | None,
    name: str,
    conv_name: str | None = None,
    bn_name: str | None = None,
) -> Any:
    """DepthwiseConv2D (no bias) -> BatchNormalization -> optional activation."""
    x = layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=conv_name or f"{name}_dwconv"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name or f"{name}_dwbn")(x)
    return activation(x, act, name=f"{name}_dw{act}") if act else x


def conv_act(
    x: Any, filters: int, kernel: int, *, stride: int = 1, batch_norm: bool = False, act: str = "relu", name: str
) -> Any:
    """Conv2D with bias (named ``name``) -> [BatchNormalization] -> activation: the plain-CNN unit (AlexNet, VGG)."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", kernel_initializer="he_normal", name=name)(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return activation(x, act, name=f"{name}_{act}")


def dense_act(x: Any, units: int, *, dropout: float = 0.0, act: str = "relu", name: str) -> Any:
    """[Dropout] -> Dense -> activation: the fully connected layers of the classic nets."""
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return activation(layers.Dense(units, name=name)(x), act, name=f"{name}_{act}")


def padded(x: Any, pad: int, name: str) -> Any:
    """Symmetric zero padding, for the stems that keras.applications pads explicitly (ResNet, DenseNet)."""
    return layers.ZeroPadding2D(pad, name=name)(x)


def squeeze_excite(
    x: Any, squeeze: int, *, act: str, gate: str, name: str, conv_names: tuple[str, str] | None = None
) -> Any:
    """Channel attention: GAP -> 1x1 conv -> act -> 1x1 conv -> gate -> multiply the input.

    ``gate`` is "sigmoid" (EfficientNet) or "hard_sigmoid" (MobileNetV3); ``conv_names``
    overrides the two convs' names (``{name}_se_reduce``, ``{name}_se_expand``).
    """
    reduce_name, expand_name = conv_names or (f"{name}_se_reduce", f"{name}_se_expand")
    channels = int(x.shape[-1])
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = layers.Conv2D(squeeze, 1, padding="same", name=reduce_name)(s)
    s = activation(s, act, name=f"{name}_se_{act}")
    s = layers.Conv2D(channels, 1, padding="same", name=expand_name)(s)
    if gate == "sigmoid":
        s = layers.Activation("sigmoid", name=f"{name}_se_sigmoid")(s)
    else:
        s = hard_sigmoid(s, name=f"{name}_se_hsigmoid")
    return layers.Multiply(name=f"{name}_se_excite")([x, s])


def classifier(x: Any, num_classes: int, dropout: float, *, pool: bool = True) -> Any:
    """[global average pool] -> [dropout] -> Dense -> float32 softmax named ``probs``."""
    if pool:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    # float32 even under a mixed_float16 policy: losses and exported outputs expect it.
    return layers.Activation("softmax", dtype="float32", name="probs")(x)


def pooled_size(size: int) -> int:
    """Spatial size after a 2x2 'same' pooling or stride-2 'same' conv."""
    return (size + 1) // 2
