"""ResNets: MLPerf Tiny's ResNet-8, and ResNet-18/50 v1 and pre-activation v2 (He et al. 2016a, 2016b).

ResNet-8 follows the MLPerf Tiny reference ``resnet_v1_eembc`` (CIFAR-10,
~78k parameters): a 16-filter stem and three stacks (16, 32, 64 filters) of
one basic residual block each; stacks 2 and 3 halve the resolution and use a
1x1 strided conv (no BN) as the shortcut. The reference's L2 kernel
regularizer is left to the training recipe.
"""
from __future__ import annotations

from typing import Any

from edgecls.models.registry import check_int, register


@register(
    "resnet8",
    family="resnet",
    description="MLPerf Tiny ResNet-8: 16-filter stem, 3 residual stacks (16/32/64 filters x width)",
)
def resnet8(num_classes: int, input_shape: tuple[int, int, int], *, width: float = 1.0, dropout: float = 0.0) -> Any:
    from edgecls._tf import keras
    from edgecls.models import layers as L

    layers = keras.layers

    def conv(x: Any, filters: int, kernel: int, stride: int, name: str) -> Any:
        # The reference keeps conv biases (they count in its 78k parameters).
        return layers.Conv2D(
            filters, kernel, strides=stride, padding="same", kernel_initializer="he_normal", name=name
        )(x)

    def bn(x: Any, name: str) -> Any:
        return layers.BatchNormalization(name=name)(x)

    inputs = L.image_input(input_shape)
    filters = L.scaled(16, width)
    x = layers.ReLU(name="stem_relu")(bn(conv(inputs, filters, 3, 1, "stem_conv"), "stem_bn"))
    for stack in (1, 2, 3):
        stride = 1 if stack == 1 else 2
        filters = L.scaled(16 * 2 ** (stack - 1), width)
        p = f"stack{stack}"
        y = layers.ReLU(name=f"{p}_relu1")(bn(conv(x, filters, 3, stride, f"{p}_conv1"), f"{p}_bn1"))
        y = bn(conv(y, filters, 3, 1, f"{p}_conv2"), f"{p}_bn2")
        if stride != 1 or int(x.shape[-1]) != filters:
            x = conv(x, filters, 1, stride, f"{p}_shortcut")
        x = layers.Add(name=f"{p}_add")([x, y])
        x = layers.ReLU(name=f"{p}_relu2")(x)
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="resnet8")


# ResNet-18/50 (He et al. 2016) and their pre-activation "v2" (He et al. 2016b), from one builder.
# The bottleneck variants follow keras.applications' ResNet50/ResNet50V2 layer for layer (padding,
# biases, BN epsilon, where the stride sits, names like ``conv3_block1_2_conv``) so its ImageNet
# weights load by name; the basic-block variants use the same names and conventions.
_EPSILON = 1.001e-5  # keras.applications' ResNet BN epsilon
_V2_NOTE = (
    "pre-activation puts BatchNormalization after Add, with no conv to fold it into; tfmot's default 8-bit "
    "scheme cannot quantize a standalone BatchNormalization (compress: quantize leaves those layers float)"
)


def _resnet(
    name: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    blocks: tuple[int, ...],
    filters: tuple[int, ...],
    bottleneck: bool,
    v2: bool,
    width: float,
    dropout: float,
    stem_stride: int,
    stem_kernel: int = 7,
) -> Any:
    check_int("stem_stride", stem_stride, choices=(1, 2, 4))
    from edgecls._tf import keras
    from edgecls.models import layers as L

    layers = keras.layers
    inputs = L.image_input(input_shape)
    stem = L.scaled(filters[0], width)
    x = L.padded(inputs, stem_kernel // 2, name="conv1_pad")
    x = layers.Conv2D(stem, stem_kernel, strides=min(stem_stride, 2), name="conv1_conv")(x)
    if not v2:
        x = layers.BatchNormalization(epsilon=_EPSILON, name="conv1_bn")(x)
        x = layers.ReLU(name="conv1_relu")(x)
    if stem_stride == 4:
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(L.padded(x, 1, name="pool1_pad"))
    for stage, (n, f) in enumerate(zip(blocks, filters), start=2):
        for b in range(1, n + 1):
            # v1 and basic blocks stride in the first block of stages 3-5; keras' v2 bottleneck in the last
            # block of stages 2-4 instead.
            if v2 and bottleneck:
                strided = b == n and stage <= len(blocks)
            else:
                strided = b == 1 and stage > 2
            block = _bottleneck if bottleneck else _basic
            x = block(x, L.scaled(f, width), stride=2 if strided else 1, first=b == 1, v2=v2,
                      name=f"conv{stage}_block{b}")
    if v2:
        x = layers.ReLU(name="post_relu")(layers.BatchNormalization(epsilon=_EPSILON, name="post_bn")(x))
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


def _preact(x: Any, name: str) -> Any:
    from edgecls.models import layers as L

    x = L.layers.BatchNormalization(epsilon=_EPSILON, name=f"{name}_preact_bn")(x)
    return L.layers.ReLU(name=f"{name}_preact_relu")(x)


def _shortcut(x: Any, preact: Any, out: int, *, stride: int, conv: bool, v2: bool, name: str) -> Any:
    """1x1 conv (+BN in v1) when the shape changes; v2 strides an identity with a 1x1 max pool, as keras does."""
    from edgecls.models import layers as L

    if conv:
        s = L.layers.Conv2D(out, 1, strides=stride, name=f"{name}_0_conv")(preact if v2 else x)
        return s if v2 else L.layers.BatchNormalization(epsilon=_EPSILON, name=f"{name}_0_bn")(s)
    return L.layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x) if stride > 1 else x


def _finish(x: Any, shortcut: Any, *, v2: bool, name: str) -> Any:
    from edgecls.models import layers as L

    if v2:
        return L.layers.Add(name=f"{name}_out")([shortcut, x])
    return L.layers.ReLU(name=f"{name}_out")(L.layers.Add(name=f"{name}_add")([shortcut, x]))


def _bottleneck(x: Any, filters: int, *, stride: int, first: bool, v2: bool, name: str) -> Any:
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), keras.applications' block1 (v1) / block2 (v2)."""
    from edgecls.models import layers as L

    preact = _preact(x, name) if v2 else x
    shortcut = _shortcut(x, preact, 4 * filters, stride=stride, conv=first, v2=v2, name=name)
    conv = {"epsilon": _EPSILON, "use_bias": not v2}
    if v2:
        y = L.conv_bn(preact, filters, 1, name=f"{name}_1", **conv)
        y = L.conv_bn(L.padded(y, 1, name=f"{name}_2_pad"), filters, 3, stride=stride, padding="valid",
                      name=f"{name}_2", **conv)
    else:
        y = L.conv_bn(x, filters, 1, stride=stride, name=f"{name}_1", **conv)
        y = L.conv_bn(y, filters, 3, name=f"{name}_2", **conv)
    y = L.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(y)
    if not v2:
        y = L.layers.BatchNormalization(epsilon=_EPSILON, name=f"{name}_3_bn")(y)
    return _finish(y, shortcut, v2=v2, name=name)


def _basic(x: Any, filters: int, *, stride: int, first: bool, v2: bool, name: str) -> Any:
    """3x3 -> 3x3, the ResNet-18/34 block (no keras.applications counterpart; named alike)."""
    from edgecls.models import layers as L

    preact = _preact(x, name) if v2 else x
    conv = first and (stride != 1 or int(x.shape[-1]) != filters)
    shortcut = _shortcut(x, preact, filters, stride=stride, conv=conv, v2=v2, name=name)
    y = L.conv_bn(preact, filters, 3, stride=stride, name=f"{name}_1", epsilon=_EPSILON)
    if v2:
        y = L.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(y)
    else:
        y = L.conv_bn(y, filters, 3, act=None, name=f"{name}_2", epsilon=_EPSILON)
    return _finish(y, shortcut, v2=v2, name=name)


# name: (blocks per stage, bottleneck, v2, keras.applications model with ImageNet weights)
_VARIANTS = {
    "resnet18": ((2, 2, 2, 2), False, False, ""),
    "resnet50": ((3, 4, 6, 3), True, False, "ResNet50"),
    "resnet18_v2": ((2, 2, 2, 2), False, True, ""),
    "resnet50_v2": ((3, 4, 6, 3), True, True, "ResNet50V2"),
}


def _register(name: str) -> None:
    blocks, bottleneck, v2, imagenet = _VARIANTS[name]

    def build(
        num_classes: int, input_shape: tuple[int, int, int], *, width: float = 1.0, dropout: float = 0.0,
        stem_stride: int = 4,
    ) -> Any:
        return _resnet(name, num_classes, input_shape, blocks=blocks, filters=(64, 128, 256, 512),
                       bottleneck=bottleneck, v2=v2, width=width, dropout=dropout, stem_stride=stem_stride)

    depth = 2 + 2 * sum(blocks) if not bottleneck else 2 + 3 * sum(blocks)
    kind = "bottleneck" if bottleneck else "basic"
    version = "pre-activation (v2)" if v2 else "v1"
    build.__name__ = name
    register(
        name,
        family="resnet",
        description=(f"ResNet-{depth} {version}: {kind} blocks {'/'.join(map(str, blocks))}, 64-512 filters x width; "
                     "stem_stride 4 (7x7/2 + max pool), 2 or 1 for small inputs"),
        default_input=(224, 224, 3),
        qat=not v2,
        qat_note=_V2_NOTE if v2 else "",
        imagenet=imagenet,
    )(build)


for _name in _VARIANTS:
    _register(_name)


@register(
    "resnet8_v2",
    family="resnet",
    description="Pre-activation ResNet-8: ResNet-8's 16/32/64-filter stacks with v2 basic blocks",
    qat=False,
    qat_note=_V2_NOTE,
)
def resnet8_v2(num_classes: int, input_shape: tuple[int, int, int], *, width: float = 1.0, dropout: float = 0.0) -> Any:
    return _resnet("resnet8_v2", num_classes, input_shape, blocks=(1, 1, 1), filters=(16, 32, 64), bottleneck=False,
                   v2=True, width=width, dropout=dropout, stem_stride=1, stem_kernel=3)
