"""Networks: shapes for any input size, pinned parameter counts, original PAULow state dicts,
attention maps, FLOP counting."""

from __future__ import annotations

import io

import pytest
import torch

from paulow.errors import ModelError, UsageError
from paulow.models import MODEL_NAMES, build_model, count_conv_flops, infer_original_args, model_args
from paulow.models.layers import PointwiseConv2d, WSConv2d, group_norm, pad_to_multiple, standardise_weight


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [(37, 53), (1, 1), (129, 129)])
def test_logits_have_the_input_size(name, size):
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, classes=2, width=4).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, *size))
    assert logits.shape == (2, 2, *size)
    assert logits.is_contiguous()
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_one_channel_trains_on_odd_sizes(name):
    model = build_model(name, in_channels=1, classes=1, width=4).train()
    logits = model(torch.randn(2, 1, 19, 23))
    assert logits.shape == (2, 1, 19, 23)
    logits.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_depth_sets_the_number_of_levels(depth):
    model = build_model("paulow_attention_unet", width=2, depth=depth).eval()
    model.keep_attention = True
    with torch.no_grad():
        assert model(torch.randn(1, 1, 21, 18)).shape == (1, 1, 21, 18)
    assert len(model.attention_maps) == depth - 1


# Parameter counts for width 4, depth 2, one input channel, one class, added up by hand:
# PAULow: conv1 (1->4): 3x3 1->4 (36+4) + GN 8 + 3x3 4->4 (144+4) + GN 8 + 1x1 residual (4+4) = 212
#   conv2 (4->8): (288+8) + 16 + (576+8) + 16 + (32+8) = 952; up1 2x2 8->4: 128+4 = 132
#   att1: W_g 1x1 4->2 (8+2) + GN 4, W_x the same, psi 1x1 2->1 (2+1) + GN(1) 2 = 33
#   conv1_1 (8->4): (288+4) + 8 + (144+4) + 8 + (32+4) = 492; final 4+1 = 5     -> 1826
# U-Net with BN (convs without bias): (36+8+144+8) + (288+16+576+16) + 132 + (288+8+144+8) + 5
# U-Net without BN: (40+148) + (296+584) + 132 + (292+148) + 5
# Attention U-Net: U-Net BN encoders 196 + 896; up: 3x3 8->4 (288+4) + BN 8 = 300; gate 33;
#   decoder 448; final 5
TINY_PARAMS = {"paulow_attention_unet": 1826, "unet": 1677, "unet_no_bn": 1645, "attention_unet": 1878}


@pytest.mark.parametrize("key", sorted(TINY_PARAMS))
def test_tiny_parameter_counts(key):
    name, extra = ("unet", {"batch_norm": False}) if key == "unet_no_bn" else (key, {})
    model = build_model(name, width=4, depth=2, **extra)
    assert n_params(model) == TINY_PARAMS[key]


def test_published_network_size_and_flops():
    model = build_model("paulow_attention_unet")  # width 64, depth 4, one channel
    assert n_params(model) == 8_134_954
    flops = count_conv_flops(model, 1, 128, 128)
    assert flops == 19_754_909_696  # about 20 GFLOP per 128x128 patch, as published
    assert n_params(build_model("paulow_original", in_channels=1)) == 8_134_954
    # two more input channels: 64 filters x 2 x 3x3 in conv1.conv1, 64 x 2 in conv1.residual
    assert n_params(build_model("paulow_original", in_channels=3)) == 8_134_954 + 1152 + 128


def test_conv_flops_counted_by_hand():
    # U-Net, no BN, width 4, depth 2 on 8x8: multiply-adds per conv
    macs = (
        64 * 4 * 9  # 3x3 1->4 at 8x8
        + 64 * 4 * 36  # 3x3 4->4
        + 16 * 8 * 36  # 3x3 4->8 at 4x4
        + 16 * 8 * 72  # 3x3 8->8
        + 16 * 8 * 4 * 4  # 2x2 transposed 8->4: each input element to 4 channels x 4 px
        + 64 * 4 * 72  # 3x3 8->4 at 8x8
        + 64 * 4 * 36  # 3x3 4->4
        + 64 * 4
    )  # 1x1 4->1
    model = build_model("unet", width=4, depth=2, batch_norm=False).train()
    assert count_conv_flops(model, 1, 8, 8) == 2 * macs
    assert model.training


# Keys of the original code's AttentionUNet (NTUMMIO/PAULow, utils/model/unet.py).
ORIGINAL_BLOCK_KEYS = [
    f"{layer}.{param}"
    for layer in ("conv1", "norm1", "conv2", "norm2", "residual")
    for param in ("weight", "bias")
]
ORIGINAL_GATE_KEYS = [
    f"{layer}.{param}"
    for layer in ("W_g.0", "W_g.1", "W_x.0", "W_x.1", "psi.0", "psi.1")
    for param in ("weight", "bias")
]
ORIGINAL_KEYS = (
    {
        f"{block}.{key}"
        for block in ("conv1", "conv2", "conv3", "conv4", "conv3_1", "conv2_1", "conv1_1")
        for key in ORIGINAL_BLOCK_KEYS
    }
    | {f"{gate}.{key}" for gate in ("att3", "att2", "att1") for key in ORIGINAL_GATE_KEYS}
    | {f"{layer}.{param}" for layer in ("up3", "up2", "up1", "final") for param in ("weight", "bias")}
)


def test_original_state_dict_keys_and_shapes():
    state = build_model("paulow_original", in_channels=3, classes=1).state_dict()
    assert set(state) == ORIGINAL_KEYS
    assert state["conv1.conv1.weight"].shape == (64, 3, 3, 3)
    assert state["conv4.conv2.weight"].shape == (512, 512, 3, 3)
    assert state["up3.weight"].shape == (512, 256, 2, 2)
    assert state["att1.W_g.0.weight"].shape == (32, 64, 1, 1)
    assert state["att1.psi.1.weight"].shape == (1,)
    assert state["conv1_1.residual.weight"].shape == (64, 128, 1, 1)
    assert state["final.weight"].shape == (1, 64, 1, 1)


@pytest.mark.parametrize("in_channels, classes, width", [(3, 1, 64), (1, 2, 8)])
def test_original_state_dict_round_trip(in_channels, classes, width):
    torch.manual_seed(1)
    original = build_model("paulow_original", in_channels=in_channels, classes=classes, width=width).eval()
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    args = infer_original_args(state)
    assert args == {
        "name": "paulow_original",
        "in_channels": in_channels,
        "classes": classes,
        "width": width,
        "depth": 4,
    }
    rebuilt = build_model(**args).eval()
    rebuilt.load_state_dict(state, strict=True)
    x = torch.randn(1, in_channels, 16, 24)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), original(x))


def test_published_network_is_the_original_network():
    torch.manual_seed(2)
    original = build_model("paulow_original", in_channels=1, width=8).eval()
    published = build_model("paulow_attention_unet", width=8, depth=4).eval()
    published.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(2, 1, 24, 32)
    with torch.no_grad():
        assert torch.equal(published(x), original(x))


def test_infer_original_args_rejects_other_weights():
    with pytest.raises(ModelError, match="not a PAULow"):
        infer_original_args(build_model("unet", width=4, depth=2).state_dict())
    deeper = build_model("paulow_attention_unet", width=4, depth=3).state_dict()
    assert infer_original_args(deeper)["name"] == "paulow_attention_unet"
    assert infer_original_args(deeper)["depth"] == 3


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_args_rebuild_the_same_network(name):
    model = build_model(name, in_channels=2, classes=3, width=4)
    args = model_args(model)
    assert args["name"] == name
    rebuilt = build_model(**args)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert model_args(rebuilt) == args


def test_unet_batch_norm_flag_is_kept():
    model = build_model("unet", width=4, depth=2, batch_norm=False)
    assert model_args(model)["batch_norm"] is False
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("name", ["paulow_attention_unet", "attention_unet"])
def test_attention_maps_deepest_first(name):
    model = build_model(name, width=4, depth=3).eval()
    assert model.attention_maps == []
    model.keep_attention = True
    with torch.no_grad():
        model(torch.randn(2, 1, 21, 30))
    maps = model.attention_maps
    assert [tuple(m.shape) for m in maps] == [(2, 1, 11, 15), (2, 1, 21, 30)]
    assert all(not m.requires_grad and 0 <= m.min() and m.max() <= 1 for m in maps)
    model.keep_attention = False
    assert model.attention_maps == []


def test_unet_has_no_attention_maps():
    model = build_model("unet", width=4, depth=2)
    model.keep_attention = True
    model(torch.randn(2, 1, 8, 8))
    assert model.attention_maps == []


def test_bad_model_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="unknown model"):
        build_model("vnet")
    with pytest.raises(UsageError, match="depth"):
        build_model("unet", depth=0)
    with pytest.raises(UsageError, match="4 levels"):
        build_model("paulow_original", depth=3)
    with pytest.raises(UsageError, match="options"):
        build_model("attention_unet", batch_norm=False)


def test_weight_standardisation_matches_the_original_formula():
    torch.manual_seed(3)
    conv = WSConv2d(2, 3, 3, padding=1)
    weight = conv.weight.detach()
    flat = weight.flatten(1)
    centred = flat - flat.mean(dim=1, keepdim=True)
    # unbiased std (n - 1 = 17) plus eps, as the original code
    std = (centred.pow(2).sum(dim=1, keepdim=True) / 17).sqrt() + 1e-5
    expected = (centred / std).view_as(weight)
    assert torch.allclose(standardise_weight(weight), expected, atol=1e-6)
    x = torch.randn(1, 2, 5, 5)
    expected_out = torch.nn.functional.conv2d(x, expected, conv.bias, padding=1)
    assert torch.allclose(conv(x), expected_out, atol=1e-5)


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_pointwise_conv_equals_a_1x1_convolution(memory_format):
    torch.manual_seed(4)
    conv = PointwiseConv2d(6, 3)
    x = torch.randn(2, 6, 5, 7).contiguous(memory_format=memory_format)
    expected = torch.nn.functional.conv2d(x, conv.weight, conv.bias)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert set(conv.state_dict()) == {"weight", "bias"}


def test_group_norm_groups_divide_channels():
    assert group_norm(64).num_groups == 8
    assert group_norm(12).num_groups == 4
    assert group_norm(2).num_groups == 2
    assert group_norm(1).num_groups == 1


def test_padding_reflects_when_possible_and_zero_fills_otherwise():
    x = torch.arange(5.0).view(1, 1, 5, 1)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert padded[0, 0, :, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1]  # reflected rows
    assert padded[0, 0, 0].tolist() == [0] * 8  # a 1-pixel-wide side cannot reflect 7 columns
    assert pad_to_multiple(x, 1) is x


# Parameter counts per `--norm` at width 8, depth 3 (channels 8, 16, 32). The PAULow network has 372
# normalisation parameters (weight + bias on 186 channels: blocks 2 x (8 + 16 + 32 + 16 + 8), gates
# 4 + 4 + 1 and 8 + 8 + 1); the U-Net has 160 normalised channels whose bias moves into the conv.
@pytest.mark.parametrize(
    "name, norm, params",
    [
        ("paulow_attention_unet", "group", 31419),
        ("paulow_attention_unet", "batch", 31419),
        ("paulow_attention_unet", "layer", 31419),
        ("paulow_attention_unet", "instance", 31419),
        ("paulow_attention_unet", "none", 31419 - 372),
        ("unet", "batch", 29481),
        ("unet", "group", 29481),
        ("unet", "none", 29481 - 160),
    ],
)
def test_norm_option_parameter_counts(name, norm, params):
    model = build_model(name, width=8, depth=3, norm=norm)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model(torch.rand(1, 1, 24, 24)).shape == (1, 1, 24, 24)
    assert build_model(**model_args(model)).state_dict().keys() == model.state_dict().keys()


def test_norm_kinds_and_dropout_reach_the_layers():
    from torch import nn

    layer = build_model("paulow_attention_unet", width=8, depth=3, norm="layer")
    assert layer.conv1.norm1.num_groups == 1
    instance = build_model("paulow_attention_unet", width=8, depth=3, norm="instance")
    assert instance.conv2.norm1.num_groups == 16
    assert isinstance(
        build_model("paulow_attention_unet", width=8, depth=3, norm="batch").conv1.norm1, nn.BatchNorm2d
    )
    assert build_model("paulow_attention_unet", width=8, depth=3, dropout=0.35).drop1.p == 0.35
    assert (
        "norm" not in build_model("paulow_attention_unet", width=8, depth=3).spec
    )  # published spec unchanged


@pytest.mark.parametrize(
    "extra, message",
    [({"norm": "weird"}, "unknown normalisation 'weird'"), ({"dropout": 1.0}, "dropout must be")],
)
def test_bad_norm_or_dropout_is_a_usage_error(extra, message):
    with pytest.raises(UsageError, match=message):
        build_model("paulow_attention_unet", width=8, depth=3, **extra)


# ---------------------------------------------------------------- VGG16-encoder U-Net
VGG16_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _torchvision_vgg16_features(batch_norm: bool = False, in_channels: int = 3) -> torch.nn.Sequential:
    """torchvision's `vgg16(_bn).features` layout (indices of conv / BN / ReLU / pool), random weights."""
    layers, cin = [], in_channels
    for v in VGG16_D:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2))
            continue
        layers += [torch.nn.Conv2d(cin, v, 3, padding=1)] + ([torch.nn.BatchNorm2d(v)] if batch_norm else [])
        layers.append(torch.nn.ReLU())
        cin = v
    return torch.nn.Sequential(*layers)


def test_vgg16_unet_encoder_is_configuration_d():
    model = build_model("vgg16_unet", in_channels=3, width=64, depth=5)
    convs = [m for m in model.encoders.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and [len(b) // 2 for b in model.encoders] == [2, 2, 3, 3, 3]
    assert sum(p.numel() for p in model.encoders.parameters()) == 14_714_688  # torchvision vgg16.features
    small = build_model("vgg16_unet", width=8, depth=5)
    assert sum(p.numel() for p in small.parameters()) == 404_809
    assert (
        sum(p.numel() for p in build_model("vgg16_unet", width=8, depth=5, batch_norm=True).parameters())
        == 406_105
    )
    assert small(torch.rand(1, 1, 40, 36)).shape == (1, 1, 40, 36)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg16_encoder_weights_load_key_by_key(tmp_path, batch_norm):
    from paulow.models import load_vgg16_encoder

    features = _torchvision_vgg16_features(batch_norm)
    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model = build_model("vgg16_unet", in_channels=3, width=64, depth=5, batch_norm=batch_norm)
    copied = load_vgg16_encoder(model, path)
    assert copied == 13 * (6 if batch_norm else 2)
    assert torch.equal(
        model.encoders[4][-2 if not batch_norm else -3].weight, features[28 if not batch_norm else 40].weight
    )
    grey = build_model("vgg16_unet", in_channels=1, width=64, depth=5, batch_norm=batch_norm)
    load_vgg16_encoder(grey, path)  # RGB filters summed for one channel
    assert torch.allclose(grey.encoders[0][0].weight, features[0].weight.sum(1, keepdim=True))


def test_vgg16_encoder_weights_of_the_wrong_shape_are_a_clear_error(tmp_path):
    from paulow.models import load_vgg16_encoder

    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in _torchvision_vgg16_features().state_dict().items()}, path)
    with pytest.raises(
        ModelError, match=r"VGG layer 0 'weight' is shape \(64, 3, 3, 3\), the encoder needs \(8, 3, 3, 3\)"
    ):
        load_vgg16_encoder(build_model("vgg16_unet", in_channels=3, width=8, depth=5), path)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="junk.pth' is not a readable weights file"):
        load_vgg16_encoder(build_model("vgg16_unet", in_channels=3, width=64, depth=5), tmp_path / "junk.pth")
