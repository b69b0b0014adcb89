"""Student weights in the original formats: DeepLab model-zoo TF1 checkpoints and the AMS
checkpoint (a pickled dict name -> array), imported into the Keras student.

The student's layer names are the model zoo's variable scopes with '/' -> '_' and the
'MobilenetV2/' prefix dropped (amslib.models.student), so the two name one variable by rule:

    MobilenetV2/expanded_conv_3/expand/BatchNorm/gamma  <->  expanded_conv_3_expand_BatchNorm / gamma
    MobilenetV2/expanded_conv/depthwise/depthwise_weights <-> expanded_conv_depthwise / depthwise_kernel
    logits/semantic/weights                             <->  logits_semantic / kernel

An import must match every student variable and use every model variable of the source
(optimizer slots and counters such as `.../Momentum` and `global_step` are skipped); anything
unmatched, or a shape that differs, fails with CheckpointError listing the names. `exclude`
leaves chosen layers out on both sides, e.g. the logits when the label set changes.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amslib.core.tf import tf
from amslib.models.imagenet import HEAD_LAYERS, IMAGENET_PADDING, IMAGENET_WIDTH, read_backbone

BACKBONE = "MobilenetV2"
IMAGENET = "imagenet"  # --init imagenet: the shipped ImageNet backbone (amslib.models.imagenet)
# Keras weight name -> the TF1 variable's last name component.
_TF_NAMES = {"kernel": "weights", "depthwise_kernel": "depthwise_weights", "bias": "biases",
             "gamma": "gamma", "beta": "beta", "moving_mean": "moving_mean",
             "moving_variance": "moving_variance"}
_BLOCK_LAYER = re.compile(r"(expanded_conv(?:_\d+)?)_(expand|depthwise|project)(_BatchNorm)?")
_PLAIN_LAYER = re.compile(r"(Conv|image_pooling|aspp0|concat_projection)(_BatchNorm)?")
# Training-only entries of the original checkpoints (SemanticNetwork's OPT_FILTER/OP_FILTER).
_TRAINING_ONLY = re.compile(
    r"(^|/)(global_step|Momentum|Adam(_\d+)?|ExponentialMovingAverage|beta[12]_power|"
    r"image_cache|label_cache|images|labels)(/|$)")


class CheckpointError(ValueError):
    """An import that does not fit the student; `missing`, `unused` and `mismatched` hold
    every offending name (the message shows the first few of each)."""

    def __init__(self, message: str, *, missing=(), unused=(), mismatched=()) -> None:
        super().__init__(message)
        self.missing, self.unused, self.mismatched = tuple(missing), tuple(unused), tuple(mismatched)


# --------------------------------------------------------------------------- names (pure)


def layer_scope(layer_name: str) -> str:
    """Student layer name -> model-zoo scope ('expanded_conv_3_expand' ->
    'MobilenetV2/expanded_conv_3/expand'); ValueError for a layer with no official twin."""
    if layer_name == "logits_semantic":
        return "logits/semantic"
    block = _BLOCK_LAYER.fullmatch(layer_name)
    if block:
        return f"{BACKBONE}/{block[1]}/{block[2]}" + ("/BatchNorm" if block[3] else "")
    plain = _PLAIN_LAYER.fullmatch(layer_name)
    if plain:
        prefix = f"{BACKBONE}/" if plain[1] == "Conv" else ""
        return f"{prefix}{plain[1]}" + ("/BatchNorm" if plain[2] else "")
    raise ValueError(f"student layer '{layer_name}' has no DeepLab model-zoo name")


def official_name(layer_name: str, weight_name: str) -> str:
    """(student layer, Keras weight) -> the model zoo's variable name. Keras 3 calls a
    depthwise kernel 'kernel'; slim called it 'depthwise_weights'."""
    scope = layer_scope(layer_name)
    if weight_name == "kernel" and scope.endswith("/depthwise"):
        return f"{scope}/depthwise_weights"
    return f"{scope}/{_TF_NAMES[weight_name]}"


def plain_name(name: str) -> str:
    """'MobilenetV2/Conv/weights:0' -> 'MobilenetV2/Conv/weights' (the AMS dict keeps ':0')."""
    return re.sub(r":\d+$", "", name)


def is_training_only(name: str) -> bool:
    return bool(_TRAINING_ONLY.search(name))


def student_variables(model) -> dict[str, object]:
    """{official name: Keras variable} for every weight of the student (BatchNorm
    statistics included: they are part of a checkpoint's model)."""
    out = {}
    for layer in model.layers:
        for weight in layer.weights:
            out[official_name(layer.name, weight.path.split("/")[-1])] = weight
    return out


def _excluded(name: str, exclude: tuple[str, ...]) -> bool:
    """`exclude` holds student layer names or official scopes (prefixes of either)."""
    keras_like = name.replace("/", "_").removeprefix(f"{BACKBONE}_")
    return any(name.startswith(e) or keras_like.startswith(e) for e in exclude)


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


@dataclass(frozen=True)
class ImportReport:
    """What an import did: `loaded` official names, `skipped` source names (training-only
    or excluded)."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]


def match(model, source: dict[str, np.ndarray], *, exclude: tuple[str, ...] = (),
          origin: str = "the checkpoint") -> tuple[dict[str, np.ndarray], ImportReport]:
    """Pair source arrays with student variables -> ({official name: array}, report).
    Raises CheckpointError naming every unmatched or mis-shaped variable."""
    targets = {n: v for n, v in student_variables(model).items() if not _excluded(n, exclude)}
    wanted = {plain_name(n): a for n, a in source.items()}
    skipped = sorted(n for n in wanted if is_training_only(n) or _excluded(n, exclude))
    wanted = {n: a for n, a in wanted.items() if n not in set(skipped)}
    missing = sorted(set(targets) - set(wanted))
    unused = sorted(set(wanted) - set(targets))
    mismatched = sorted(f"{n} {tuple(np.shape(wanted[n]))} vs {tuple(targets[n].shape)}"
                        for n in set(targets) & set(wanted) if tuple(np.shape(wanted[n])) != tuple(targets[n].shape))
    if missing or unused or mismatched:
        parts = [f"{len(missing)} student variable(s) not in {origin}: {_listing(missing)}" if missing else "",
                 f"{len(unused)} variable(s) of {origin} the student lacks: {_listing(unused)}" if unused else "",
                 f"{len(mismatched)} shape(s) differ (source vs student): {_listing(mismatched)}" if mismatched else ""]
        hint = ("; a different label set? leave the logits out (exclude logits_semantic)" if any(
            m.startswith("logits/") for m in mismatched) else "; is it a MobileNetV2 DeepLab of this width?")
        raise CheckpointError("cannot import: " + "; ".join(p for p in parts if p) + hint,
                              missing=missing, unused=unused, mismatched=mismatched)
    return {n: wanted[n] for n in targets}, ImportReport(tuple(sorted(targets)), tuple(skipped))


def assign(model, source: dict[str, np.ndarray], *, exclude: tuple[str, ...] = (),
           origin: str = "the checkpoint") -> ImportReport:
    """Load `source` ({official name: array}) into the student; nothing is assigned unless
    everything matches."""
    arrays, report = match(model, source, exclude=exclude, origin=origin)
    variables = student_variables(model)
    for name, array in arrays.items():
        variables[name].assign(np.asarray(array, dtype=variables[name].dtype))
    return report


# --------------------------------------------------------------------------- readers and writers


def checkpoint_prefix(path: str | Path) -> str:
    """A TF1 checkpoint given as its prefix (model.ckpt-30000), its .index file, or the folder
    holding it (the model zoo's unpacked tarball) -> the prefix."""
    path = Path(path)
    if path.is_dir():
        indexes = sorted(path.glob("*.index"))
        if not indexes:
            raise CheckpointError(f"no TF1 checkpoint (*.index) in {path}")
        path = indexes[-1]
    if path.suffix == ".index":
        return str(path.with_suffix(""))
    if not Path(f"{path}.index").is_file():
        raise CheckpointError(f"no TF1 checkpoint at {path} (expected {path}.index); give the "
                              "prefix, e.g. .../model.ckpt-30000")
    return str(path)


def read_tf1_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The model variables of a TF1 checkpoint, {name: array} (training-only ones left out)."""
    reader = tf.train.load_checkpoint(checkpoint_prefix(path))
    names = [n for n in reader.get_variable_to_shape_map() if not is_training_only(n)]
    return {n: reader.get_tensor(n) for n in names}


def write_tf1_checkpoint(arrays: dict[str, np.ndarray], prefix: str | Path) -> None:
    """Write {name: array} as a TF1 (V2-format) checkpoint that tf.compat.v1.train.Saver and
    tf.train.load_checkpoint read, under exactly these variable names."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(arrays[n]) for n in names])


def read_ams_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The original AMS checkpoint: a dict name -> array, pickled (.pkl) or np.save'd (.npy).
    Unpickling runs code stored in the file: load only files you trust."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=True)
            data = data.item() if data.dtype == object and data.shape == () else data
        else:
            with open(path, "rb") as f:
                data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, ValueError, EOFError) as err:
        raise CheckpointError(f"cannot read AMS checkpoint {path}: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a dict name -> array")
    return {str(k): np.asarray(v) for k, v in data.items()}


def export_ams_dict(model, path: str | Path) -> None:
    """Save the student as the AMS format (pickled dict, official names with ':0')."""
    arrays = {f"{n}:0": np.asarray(v.numpy()) for n, v in student_variables(model).items()}
    with open(path, "wb") as f:
        pickle.dump(arrays, f, protocol=4)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """{name: array} of a plain .npz under the official names (the converted ImageNet backbone;
    `np.savez(f, **arrays)`). Nothing is unpickled."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"cannot read {path} as .npz weights ({first})") from None


def read_weights(path: str | Path) -> tuple[dict[str, np.ndarray], str]:
    """({name: array}, kind) from an AMS dict (.pkl/.npy), a .npz of arrays or a TF1 checkpoint."""
    path = Path(path)
    if path.suffix in (".pkl", ".pickle", ".npy"):
        return read_ams_dict(path), "AMS checkpoint"
    if path.suffix == ".npz":
        if not path.is_file():
            raise CheckpointError(f"weights not found: {path}")
        return read_npz(path), "weights"
    return read_tf1_checkpoint(path), "TF1 checkpoint"


def import_weights(model, path: str | Path, *, exclude: tuple[str, ...] = ()) -> ImportReport:
    """Load an AMS dict or a TF1 checkpoint (prefix, .index or folder) into the student."""
    arrays, kind = read_weights(path)
    return assign(model, arrays, exclude=exclude, origin=f"{kind} {Path(path).name}")


def load_imagenet_backbone(model, *, exclude: tuple[str, ...] = ()) -> ImportReport:
    """The shipped ImageNet MobileNetV2 (amslib.models.imagenet) into the student's backbone;
    the head keeps the weights it has. Needs a width-1.0 student with symmetric padding
    (`StudentSpec(width_multiplier=1.0, padding="symmetric")`): anything else is one line."""
    first = model.get_layer("Conv")
    if first.filters != 32:
        raise CheckpointError(f"the ImageNet backbone is MobileNetV2 width {IMAGENET_WIDTH:g} (32 filters in its first "
                              f"layer), this student has {first.filters}: use --width-multiplier {IMAGENET_WIDTH:g}")
    if not any(layer.name == "Conv_pad" for layer in model.layers):
        raise CheckpointError("the ImageNet backbone was trained with PyTorch's symmetric padding; build the student "
                              f"with StudentSpec(padding='{IMAGENET_PADDING}')")
    return assign(model, read_backbone(), exclude=(*HEAD_LAYERS, *exclude), origin="the ImageNet backbone")


def load_initial_weights(model, path: str | Path, *, exclude: tuple[str, ...] = ()) -> None:
    """Weights to start a pretraining from: 'imagenet' (the backbone only), a .weights.h5 of
    the same spec, or an original-format checkpoint (TF1, AMS dict or .npz, with `exclude`
    layers left out)."""
    if str(path) == IMAGENET:
        load_imagenet_backbone(model, exclude=exclude)
    elif str(path).endswith(".weights.h5"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"--init weights not found: {path}; give a .weights.h5 made by `amslib pretrain`, "
                                    "a TF1 checkpoint prefix or an AMS dict (.pkl)")
        try:
            model.load_weights(path)
        except Exception as err:  # Keras' message lists every layer: keep its first line
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"cannot start from {path} ({first}); is it a student of the same width, head "
                                  "and classes?") from None
    else:
        import_weights(model, path, exclude=exclude)
