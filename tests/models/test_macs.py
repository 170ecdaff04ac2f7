"""MAC counts: exact by hand for small models, the papers' figures for the reference ones."""
from __future__ import annotations

import pytest

from edgecls.models import create
from edgecls.models.macs import count_macs, model_macs


def test_lenet5_by_hand() -> None:
    # 32x32x1, 'same' padding: conv 5x5x1->6 at 32x32, pool, conv 5x5x6->16 at 16x16, pool, 8*8*16 -> 120 -> 84 -> 10.
    c1 = 32 * 32 * 6 * 5 * 5 * 1
    c3 = 16 * 16 * 16 * 5 * 5 * 6
    dense = 8 * 8 * 16 * 120 + 120 * 84 + 84 * 10
    assert count_macs("lenet5", 10, (32, 32, 1)) == c1 + c3 + dense == 901_800


def test_small_cnn_by_hand() -> None:
    convs = 32 * 32 * 32 * 3 * 3 * 3 + 16 * 16 * 64 * 3 * 3 * 32 + 8 * 8 * 128 * 3 * 3 * 64
    assert count_macs("small_cnn", 10, (32, 32, 3)) == convs + 128 * 10


def test_vit_attention_by_hand() -> None:
    # 32x32 with 8x8 patches: 16 tokens; width 0.25: 3 heads of 16, so 48 wide; one block, MLP 4x.
    tokens, dim, heads, head_dim = 16, 48, 3, 16
    patch = tokens * dim * 8 * 8 * 3
    position = tokens * dim * 3 * 3  # the depthwise position encoding
    qkv = 3 * tokens * dim * heads * head_dim
    attention = heads * tokens * tokens * (head_dim + head_dim)  # QK^T and the weighted sum of V
    out = tokens * heads * head_dim * dim
    mlp = 2 * tokens * dim * 4 * dim
    expected = patch + position + qkv + attention + out + mlp + dim * 10
    assert count_macs("vit_tiny", 10, (32, 32, 3), width=0.25, depth=1, patch_size=8) == expected


def test_resnet8_matches_mlperf_tiny() -> None:
    # MLPerf Tiny's image-classification reference: 12.5 M MACs at 32x32x3.
    assert count_macs("resnet8") == 12_501_632


@pytest.mark.parametrize(
    "name, paper",
    [
        ("mobilenet_v2", 300e6),  # MobileNetV2 paper, Table 4: 300M multiply-adds
        ("mobilenet_v1", 569e6),  # MobileNet paper, Table 8: 569M mult-adds
        # He et al. Table 1: 3.8e9 FLOPs (multiply-adds) with the stride on the first 1x1 conv, as keras'
        # ResNet50 (and so ours) has it; the 4.1G often quoted is torchvision's v1.5 (stride on the 3x3).
        ("resnet50", 3.8e9),
        pytest.param("resnet18", 1.8e9, marks=pytest.mark.slow),  # He et al. Table 1
        pytest.param("efficientnet_b0", 0.39e9, marks=pytest.mark.slow),  # Tan & Le, Table 2: 0.39B FLOPs
        pytest.param("mobilenet_v3_large", 219e6, marks=pytest.mark.slow),  # Howard et al. 2019, Table 3
        pytest.param("mobilenet_v3_small", 56e6, marks=pytest.mark.slow),  # ditto, Table 4 (+2%: hard-sigmoid as a 1x1 conv)
        pytest.param("densenet121", 2.87e9, marks=pytest.mark.slow),  # Huang et al., Figure 3
        pytest.param("vgg16", 15.3e9, marks=pytest.mark.slow),  # conv layers of VGG-16 at 224
        # DeiT-Ti, Touvron et al. Table 1: 1.3G, rounded from 1.26G for 197 tokens (ours: 196, no class token).
        pytest.param("vit_tiny", 1.26e9, marks=pytest.mark.slow),
    ],
)
def test_reference_models_at_224(name: str, paper: float) -> None:
    macs = count_macs(name, 1000, (224, 224, 3))
    assert abs(macs / paper - 1) < 0.04, f"{name}: {macs:,} vs {paper:,.0f}"


def test_width_and_resolution_scale_macs() -> None:
    full = count_macs("resnet8", 10, (32, 32, 3))
    assert count_macs("resnet8", 10, (64, 64, 3)) == pytest.approx(4 * full, rel=0.01)
    assert count_macs("resnet8", 10, (32, 32, 3), width=0.5) < 0.3 * full


def test_nested_models_are_counted_through() -> None:
    from edgecls._tf import keras

    inner = create("lenet5", 10, (32, 32, 1))
    outer_in = keras.Input((32, 32, 1))
    outer = keras.Model(outer_in, keras.layers.Dense(3)(inner(outer_in)))
    assert model_macs(outer) == model_macs(inner) + 10 * 3
