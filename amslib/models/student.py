"""The student: DeepLabV3 with a MobileNetV2 backbone, in Keras 3.

Follows DeepLab's MobileNetV2 variant (tensorflow/models research/deeplab, `mobilenet_v2`
feature extractor up to `layer_18`, no ASPP atrous branches): an image-pooling branch and a
1x1 branch, concatenated, projected, then 1x1 logits upsampled to the input size. Layer names
are the model zoo's variable scopes with '/' replaced by '_' (`MobilenetV2/expanded_conv_1/
expand` -> `expanded_conv_1_expand`), so official checkpoints map onto layers by rule.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from amslib.core.files import ASSETS
from amslib.core.tf import keras, quiet_function, tf
from amslib.models.checkpoints import import_weights

layers = keras.layers


def default_student_path(width_multiplier: float) -> Path:
    """The shipped student for `synthetic:street` at this width (`make student` rebuilds it)."""
    return ASSETS / f"student_synthetic_street_w{round(width_multiplier * 100):03d}.weights.h5"

# MobileNetV2 inverted-residual blocks: (expansion t, output channels c, stride s).
# Matches slim's V2_DEF: expanded_conv, expanded_conv_1 ... expanded_conv_16.
_BLOCKS = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)
_BN = dict(epsilon=1e-3, momentum=0.997)
PADDINGS = ("same", "symmetric")


@dataclass(frozen=True)
class StudentSpec:
    """Architecture of a student; weights only fit a model of the same spec (any height)."""

    num_classes: int = 19
    height: int = 256
    width: int = 512
    width_multiplier: float = 1.0
    output_stride: int = 16
    head_channels: int = 256
    # How a stride-2 3x3 convolution pads: "same" is TensorFlow's (right and bottom only on even
    # sizes; the model zoo's and the shipped students'), "symmetric" PyTorch's (one pixel on
    # every side; the ImageNet backbone's, amslib.models.imagenet). A student file carries it.
    padding: str = "same"

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ValueError(f"padding '{self.padding}' is not one of: {', '.join(PADDINGS)}")


def _divisible(value: float, divisor: int = 8) -> int:
    """Slim's `_make_divisible`: round channels to a multiple of 8, never below 90%."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _pad(x, name: str, *, kernel: int, stride: int, padding: str) -> tuple[object, str]:
    """(input, Keras padding) of a convolution: PyTorch's symmetric rule pads a strided 3x3 by
    one pixel on every side itself; everything else is Keras' 'same'."""
    if padding == "symmetric" and stride > 1 and kernel > 1:
        return layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x), "valid"
    return x, "same"


def _conv_bn(x, filters: int, kernel: int, name: str, *, stride: int = 1, relu: bool = True,
             padding: str = "same"):
    x, mode = _pad(x, name, kernel=kernel, stride=stride, padding=padding)
    x = layers.Conv2D(filters, kernel, strides=stride, padding=mode, use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_BatchNorm", **_BN)(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def _inverted_residual(x, block: tuple[int, int, int], name: str, *, alpha: float,
                       stride: int, rate: int, padding: str):
    """One MobileNetV2 block; stride/rate already adjusted for the output stride."""
    expansion, channels, _ = block
    in_channels = x.shape[-1]
    out_channels = _divisible(channels * alpha)
    y = x
    if expansion > 1:
        y = _conv_bn(y, _divisible(in_channels * expansion), 1, f"{name}_expand")
    y, mode = _pad(y, f"{name}_depthwise", kernel=3, stride=stride, padding=padding)
    y = layers.DepthwiseConv2D(3, strides=stride, dilation_rate=rate, padding=mode,
                               use_bias=False, name=f"{name}_depthwise")(y)
    y = layers.BatchNormalization(name=f"{name}_depthwise_BatchNorm", **_BN)(y)
    y = layers.ReLU(6.0, name=f"{name}_depthwise_relu")(y)
    y = _conv_bn(y, out_channels, 1, f"{name}_project", relu=False)
    if stride == 1 and in_channels == out_channels:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def _backbone(x, *, alpha: float, output_stride: int, padding: str = "same"):
    """MobileNetV2 features at 1/output_stride; past it, strides become atrous rates."""
    x = _conv_bn(x, _divisible(32 * alpha), 3, "Conv", stride=2, padding=padding)
    current_stride, rate = 2, 1
    for i, block in enumerate(_BLOCKS):
        stride = block[2]
        block_rate = rate
        if stride > 1 and current_stride >= output_stride:
            rate *= stride  # keep resolution: dilate instead of striding (DeepLab)
            stride = 1
        else:
            current_stride *= stride
        name = "expanded_conv" if i == 0 else f"expanded_conv_{i}"
        x = _inverted_residual(x, block, name, alpha=alpha, stride=stride, rate=block_rate, padding=padding)
    return x


def build_student(spec: StudentSpec = StudentSpec()) -> keras.Model:
    """DeepLabV3-MobileNetV2. Input (N, H, W, 3) RGB in [0, 255]; output (N, H, W, C) logits."""
    inputs = keras.Input((spec.height, spec.width, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)  # DeepLab's [-1, 1]
    features = _backbone(x, alpha=spec.width_multiplier, output_stride=spec.output_stride, padding=spec.padding)
    return keras.Model(inputs, _head(features, spec), name="deeplabv3_mobilenetv2")


def build_head(spec: StudentSpec, feature_shape: tuple[int, int, int]) -> keras.Model:
    """The student's head alone, (N, h, w, C) backbone features -> (N, H, W, classes) logits,
    with the same layer names (weights copy across by name): pretraining with the backbone
    frozen fits it on features computed once (amslib.models.pretrain.pretrain_head)."""
    features = keras.Input(feature_shape, name="features")
    return keras.Model(features, _head(features, spec), name="deeplabv3_head")


def _head(features, spec: StudentSpec):
    """DeepLabV3's head without atrous branches: image pooling and a 1x1 branch, projected."""
    fh, fw = features.shape[1], features.shape[2]
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="image_pooling_gap")(features)
    pooled = _conv_bn(pooled, spec.head_channels, 1, "image_pooling")
    pooled = layers.UpSampling2D((fh, fw), name="image_pooling_upsample")(pooled)
    branch = _conv_bn(features, spec.head_channels, 1, "aspp0")
    x = layers.Concatenate(name="concat")([pooled, branch])
    x = _conv_bn(x, spec.head_channels, 1, "concat_projection")
    x = layers.Conv2D(spec.num_classes, 1, name="logits_semantic")(x)
    return layers.Resizing(spec.height, spec.width, interpolation="bilinear", name="upsample_logits")(x)


BACKBONE_OUTPUT = "expanded_conv_16_project_BatchNorm"  # the last backbone layer; the head follows


def load_student(spec: StudentSpec, weights: str | Path = "default") -> keras.Model:
    """A student of `spec` with `weights` ('default' = the shipped synthetic-street student
    of the spec's width multiplier)."""
    default = str(weights) == "default"
    if default and spec.num_classes != 19:
        raise ValueError(f"the shipped students know cityscapes19's 19 classes, not {spec.num_classes}; give a "
                         f"{spec.num_classes}-class student (--student FILE, e.g. made by `python -m amslib pretrain "
                         "--teacher SPEC --video VIDEO`), or use --label-set cityscapes19")
    path = default_student_path(spec.width_multiplier) if default else Path(weights)
    if not default and is_original_checkpoint(path):  # a model-zoo TF1 checkpoint or an AMS dict
        model = build_student(spec)
        import_weights(model, path)
        return model
    if not path.is_file():
        hint = (f"no student is shipped for width_multiplier={spec.width_multiplier}; build one with "
                f"`python -m amslib pretrain --width-multiplier {spec.width_multiplier} --out {path}`"
                if default else "give the path of a .weights.h5 file made by `python -m amslib pretrain`")
        raise FileNotFoundError(f"student weights not found: {path}; {hint}")
    check_student_file(path, spec)
    spec = with_file_padding(spec, path)
    model = build_student(spec)
    try:
        with warnings.catch_warnings():  # a mismatched file makes Keras warn once per layer
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except Exception as err:  # Keras raises several types, some with pages of detail: keep one line
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load student weights {path} into a model of width {spec.width_multiplier:g} "
                         f"with {spec.num_classes} classes ({first}); is it a student made by `amslib pretrain` "
                         "with the same width_multiplier, head_channels and label set?") from None
    return model


_SPEC_ATTR = "amslib_student_spec"  # the spec a student file was saved with (HDF5 attribute)
_SPEC_FIELDS = {"width_multiplier": "width_multiplier", "num_classes": None, "output_stride": "output_stride",
                "head_channels": "head_channels"}  # field -> the --set parameter that chooses it


def student_file_spec(path: str | Path) -> dict | None:
    """The architecture a student .weights.h5 was saved with (`save_student` writes it), or None
    for a file without it (older files, or Keras' own)."""
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get(_SPEC_ATTR)
    except OSError as err:
        raise ValueError(f"{path} is not a student weights file (.weights.h5): {str(err).splitlines()[0][:120]}") from None
    return None if text is None else json.loads(text)


def adopt_student_file(config, explicit: set[str] | frozenset[str] = frozenset()):
    """`config` with the architecture its student file carries (width, output stride, head):
    a `--student FILE` brings its own, so the user need not know it. A value the user set
    explicitly (a key of `explicit`, e.g. from --set) that conflicts is refused in one line."""
    from amslib.core.config import with_overrides  # deferred: the base layer's config, only when adopting

    if str(config.student) == "default" or is_original_checkpoint(Path(config.student)) \
            or not Path(config.student).is_file():
        return config
    saved = student_file_spec(config.student) or {}
    adopt = {}
    for field, parameter in _SPEC_FIELDS.items():
        if parameter is None or field not in saved or saved[field] == getattr(config, parameter):
            continue
        if parameter in explicit:
            raise ValueError(f"student {config.student} was saved with {field}={saved[field]:g}, but --set "
                             f"{parameter}={getattr(config, parameter):g} asks for another; drop the --set to run "
                             "the student as saved, or give a student of that architecture")
        adopt[parameter] = saved[field]
    return with_overrides(config, adopt) if adopt else config


def check_student_file(path: str | Path, spec: StudentSpec) -> None:
    """One clear line when a student file's architecture is not the run's: what it is, and what to set."""
    saved = student_file_spec(path)
    if saved is None:
        return
    wrong = {k: v for k, v in saved.items() if k in _SPEC_FIELDS and v != getattr(spec, k)}
    if not wrong:
        return
    have = ", ".join(f"{k}={saved[k]:g}" if isinstance(saved[k], float) else f"{k}={saved[k]}" for k in wrong)
    want = ", ".join(f"{k}={getattr(spec, k):g}" if isinstance(getattr(spec, k), float) else f"{k}={getattr(spec, k)}"
                     for k in wrong)
    sets = " ".join(f"{_SPEC_FIELDS[k]}={saved[k]:g}" for k in wrong if _SPEC_FIELDS[k])
    what = f"run with --set {sets}" if sets else ""
    if "num_classes" in wrong:
        label_set = {19: "cityscapes19", 21: "voc21"}.get(saved["num_classes"], f"a {saved['num_classes']}-class set")
        what = (what + " and " if what else "run with ") + f"--label-set {label_set}"
    raise ValueError(f"student {path} was saved with {have}, but this run needs {want}; {what}")


def model_padding(model: keras.Model) -> str:
    """The padding a built student uses ('symmetric' has its own padding layers)."""
    return "symmetric" if any(layer.name == "Conv_pad" for layer in model.layers) else "same"


def with_file_padding(spec: StudentSpec, path: str | Path) -> StudentSpec:
    """`spec` with the padding the student file was saved with: a file carries it, a run does
    not choose it (files without it were saved before it existed: 'same')."""
    saved = student_file_spec(path) or {}
    return replace(spec, padding=saved.get("padding", "same"))


def save_student(model: keras.Model, spec: StudentSpec, path: str | Path) -> Path:
    """Save the student's weights (no optimizer state) to a .weights.h5, atomically. The file
    records the spec, with the padding the model was built with."""
    spec = replace(spec, padding=model_padding(model))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.weights.h5")
    plain = build_student(spec)  # an uncompiled copy: the file holds no optimizer state
    plain.set_weights(model.get_weights())
    plain.save_weights(tmp)
    with h5py.File(tmp, "a") as f:  # the file carries its own architecture (check_student_file)
        f.attrs[_SPEC_ATTR] = json.dumps({k: getattr(spec, k) for k in (*_SPEC_FIELDS, "padding")})
    tmp.replace(out)
    return out


def is_original_checkpoint(path: Path) -> bool:
    """A TF1 checkpoint (prefix, .index or its folder) or an AMS pickled dict (.pkl, .npy)."""
    return (path.suffix in (".pkl", ".pickle", ".npy", ".index") or Path(f"{path}.index").is_file()
            or (path.is_dir() and any(path.glob("*.index"))))


def flat_weights(model: keras.Model) -> np.ndarray:
    """All trainable parameters as one (P,) float32 vector, in `trainable_variables` order."""
    return np.concatenate([np.ravel(v.numpy()) for v in model.trainable_variables])


def set_flat_weights(model: keras.Model, flat: np.ndarray) -> None:
    """Inverse of `flat_weights` (assigns in place). One traced call splits the vector and
    assigns every variable: one by one from Python it took 0.74 s a call for the laptop
    student (cProfile of a 60-s laptop AMS run on 2 loaded cores), traced 9 ms."""
    variables = model.trainable_variables
    sizes = [int(np.prod(v.shape)) for v in variables]
    if sum(sizes) != flat.size:
        raise ValueError(f"weight vector has {flat.size} values, the model needs {sum(sizes)}")
    assign = getattr(model, "_amslib_assign_flat", None)
    if assign is None:
        def assign_all(vector):
            for v, part in zip(variables, tf.split(vector, sizes)):
                v.assign(tf.reshape(part, v.shape))
            return tf.constant(0)
        assign = quiet_function(assign_all, input_signature=[tf.TensorSpec((sum(sizes),), tf.float32)], autograph=False)
        model._amslib_assign_flat = assign
    assign(tf.convert_to_tensor(np.asarray(flat, np.float32)))


class Predictor:
    """Batched argmax inference: (N, H, W, 3) uint8 -> (N, H, W) uint8 class ids.

    The model is fixed between updates, so frames are run in batches of `batch_size`
    through one traced function (SPEC: the edge runs the student on every frame).
    """

    def __init__(self, model: keras.Model, *, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size
        shape = (None, *model.input_shape[1:])
        self._fn = quiet_function(self._predict, input_signature=[tf.TensorSpec(shape, tf.uint8)])

    def _predict(self, frames):
        logits = self.model(tf.cast(frames, tf.float32), training=False)
        return tf.cast(tf.argmax(logits, axis=-1), tf.uint8)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = [self._fn(frames[i:i + self.batch_size]).numpy()
               for i in range(0, len(frames), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, *frames.shape[1:3]), np.uint8)
