"""A tiny Vision Transformer (Dosovitskiy et al. 2021; DeiT-Ti sizes: 192 wide, 12 blocks, 3 heads).

Patches are embedded by a strided conv; position comes from a 3x3 depthwise
conv on the patch grid (the conditional position encoding of Chu et al.
2021), which needs no custom layer, works at any input size and converts to
int8. Tokens are averaged (no class token) before the classifier. Built-in
tf_keras layers only, so models load without custom objects.
"""
from __future__ import annotations

from typing import Any

from edgecls.models.registry import check_int, register

_QAT_NOTE = (
    "tfmot's default 8-bit scheme has no quantize config for MultiHeadAttention or "
    "LayerNormalization; full-int8 post-training conversion works (attention becomes int8 BATCH_MATMUL "
    "and SOFTMAX, LayerNormalization int8 MEAN/SQUARED_DIFFERENCE/RSQRT)"
)


@register(
    "vit_tiny",
    family="vit",
    description="ViT-Tiny: patch_size x patch_size patches, `depth` pre-norm transformer blocks, 3 heads of 64 x width",
    default_input=(224, 224, 3),
    qat=False,
    qat_note=_QAT_NOTE,
)
def vit_tiny(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    depth: int = 12,
    patch_size: int = 16,
    heads: int = 3,
    mlp_ratio: float = 4.0,
    dropout: float = 0.0,
) -> Any:
    for key, value in (("depth", depth), ("patch_size", patch_size), ("heads", heads)):
        check_int(key, value)
    h, w = input_shape[:2]
    if h % patch_size or w % patch_size:
        from edgecls.models.registry import ModelError

        raise ModelError(f"patch_size must divide the input size, got {patch_size} for {h}x{w}")
    from edgecls._tf import keras
    from edgecls.models import layers as L

    layers = keras.layers
    head_dim = L.scaled(64, width)
    dim = heads * head_dim
    inputs = L.image_input(input_shape)
    x = layers.Conv2D(dim, patch_size, strides=patch_size, name="patch_embed")(inputs)
    pos = layers.DepthwiseConv2D(3, padding="same", name="pos_embed")(x)
    x = layers.Add(name="pos_add")([x, pos])
    x = layers.Reshape(((h // patch_size) * (w // patch_size), dim), name="tokens")(x)
    for i in range(1, int(depth) + 1):
        x = _encoder_block(x, heads=heads, head_dim=head_dim, mlp=int(dim * mlp_ratio), name=f"block{i}")
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    x = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    outputs = L.classifier(x, num_classes, dropout, pool=False)
    return keras.Model(inputs, outputs, name="vit_tiny")


def _encoder_block(x: Any, *, heads: int, head_dim: int, mlp: int, name: str) -> Any:
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x)) with GELU."""
    from edgecls.models import layers as L

    layers = L.layers
    dim = int(x.shape[-1])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    y = layers.MultiHeadAttention(heads, head_dim, name=f"{name}_attn")(y, y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    y = layers.Dense(mlp, activation="gelu", name=f"{name}_mlp1")(y)
    y = layers.Dense(dim, name=f"{name}_mlp2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])
