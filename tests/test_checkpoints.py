"""Importing the original student weights: DeepLab model-zoo TF1 checkpoints and the AMS
pickled dict, written here under the official variable names and read back into the Keras
student. The names and shapes are stated independently of amslib: MobileNetV2 (slim's
V2_DEF, depth multiplier 1.0) up to expanded_conv_16, DeepLab's image pooling, aspp0,
concat_projection and logits/semantic."""
import pickle

import numpy as np
import pytest

from amslib.models.checkpoints import (
    CheckpointError,
    export_ams_dict,
    import_weights,
    official_name,
    read_tf1_checkpoint,
    student_variables,
    write_tf1_checkpoint,
)
from amslib.models.student import StudentSpec, build_student, load_student

# (input channels, expansion, output channels) of expanded_conv, expanded_conv_1 .. _16.
_BLOCKS = [(32, 1, 16), (16, 6, 24), (24, 6, 24), (24, 6, 32), (32, 6, 32), (32, 6, 32), (32, 6, 64),
           (64, 6, 64), (64, 6, 64), (64, 6, 64), (64, 6, 96), (96, 6, 96), (96, 6, 96), (96, 6, 160),
           (160, 6, 160), (160, 6, 160), (160, 6, 320)]
BN = ("gamma", "beta", "moving_mean", "moving_variance")
SPEC = StudentSpec(num_classes=19, height=32, width=64)


def official_shapes(classes: int = 19) -> dict[str, tuple]:
    """Every model variable of a DeepLabV3 MobileNetV2 (width 1.0) checkpoint, with its shape."""
    shapes = {"MobilenetV2/Conv/weights": (3, 3, 3, 32)}
    shapes.update({f"MobilenetV2/Conv/BatchNorm/{b}": (32,) for b in BN})
    for i, (cin, t, cout) in enumerate(_BLOCKS):
        scope = "MobilenetV2/expanded_conv" + ("" if i == 0 else f"_{i}")
        mid = cin * t
        parts = ([("expand", (1, 1, cin, mid))] if t > 1 else []) + [
            ("depthwise", (3, 3, mid, 1)), ("project", (1, 1, mid, cout))]
        for part, shape in parts:
            name = "depthwise_weights" if part == "depthwise" else "weights"
            shapes[f"{scope}/{part}/{name}"] = shape
            shapes.update({f"{scope}/{part}/BatchNorm/{b}": (shape[-2] if part == "depthwise" else shape[-1],)
                           for b in BN})
    for head, cin in (("image_pooling", 320), ("aspp0", 320), ("concat_projection", 512)):
        shapes[f"{head}/weights"] = (1, 1, cin, 256)
        shapes.update({f"{head}/BatchNorm/{b}": (256,) for b in BN})
    shapes["logits/semantic/weights"] = (1, 1, 256, classes)
    shapes["logits/semantic/biases"] = (classes,)
    return shapes


def official_arrays(classes: int = 19, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(0, 0.1, s).astype(np.float32) + (1.0 if n.endswith("moving_variance") else 0.0)
            for n, s in official_shapes(classes).items()}


@pytest.fixture(scope="module")
def student():
    return build_student(SPEC)


def test_the_rule_gives_the_official_names(student):
    assert official_name("expanded_conv_3_expand_BatchNorm", "gamma") == "MobilenetV2/expanded_conv_3/expand/BatchNorm/gamma"
    assert official_name("expanded_conv_depthwise", "kernel") == "MobilenetV2/expanded_conv/depthwise/depthwise_weights"
    assert official_name("logits_semantic", "bias") == "logits/semantic/biases"
    assert official_name("image_pooling_BatchNorm", "moving_mean") == "image_pooling/BatchNorm/moving_mean"
    names = {n: tuple(v.shape) for n, v in student_variables(student).items()}
    assert names == official_shapes()  # every name and shape, nothing more, nothing less


def _assert_loaded(model, arrays):
    for name, variable in student_variables(model).items():
        np.testing.assert_array_equal(variable.numpy(), arrays[name], err_msg=name)


def test_tf1_checkpoint_round_trip(student, tmp_path):
    arrays = official_arrays()
    extras = {"global_step": np.array(30000, np.int64),  # training-only entries are skipped
              "MobilenetV2/Conv/weights/Momentum": np.zeros((3, 3, 3, 32), np.float32),
              "logits/semantic/biases/ExponentialMovingAverage": np.zeros(19, np.float32)}
    write_tf1_checkpoint({**arrays, **extras}, tmp_path / "model.ckpt-30000")
    assert set(read_tf1_checkpoint(tmp_path / "model.ckpt-30000")) == set(arrays)
    report = import_weights(student, tmp_path / "model.ckpt-30000")
    assert len(report.loaded) == 272 and set(report.skipped) == set()  # read_tf1 drops them first
    _assert_loaded(student, arrays)
    # The folder of an unpacked model-zoo tarball and the .index file work too, and so does
    # `run --student` (load_student dispatches on the format).
    model = load_student(SPEC, tmp_path)
    _assert_loaded(model, arrays)
    _assert_loaded(load_student(SPEC, tmp_path / "model.ckpt-30000.index"), arrays)


def test_unmatched_names_fail_and_are_listed(student, tmp_path):
    arrays = official_arrays()
    del arrays["MobilenetV2/expanded_conv_7/expand/BatchNorm/beta"]
    arrays["MobilenetV2/Conv_1/weights"] = np.zeros((1, 1, 320, 1280), np.float32)  # not in DeepLab's
    write_tf1_checkpoint(arrays, tmp_path / "model.ckpt")
    before = student_variables(student)["aspp0/weights"].numpy().copy()
    with pytest.raises(CheckpointError) as err:
        import_weights(student, tmp_path / "model.ckpt")
    assert err.value.missing == ("MobilenetV2/expanded_conv_7/expand/BatchNorm/beta",)
    assert err.value.unused == ("MobilenetV2/Conv_1/weights",)
    assert "1 student variable(s) not in TF1 checkpoint model.ckpt: MobilenetV2/expanded_conv_7" in str(err.value)
    assert "\n" not in str(err.value)
    np.testing.assert_array_equal(student_variables(student)["aspp0/weights"].numpy(), before)  # untouched


def test_a_voc_checkpoint_into_a_cityscapes_student_needs_its_logits_left_out(student, tmp_path):
    voc = official_arrays(classes=21, seed=1)
    with open(tmp_path / "voc.pkl", "wb") as f:
        pickle.dump({f"{n}:0": a for n, a in voc.items()}, f)
    with pytest.raises(CheckpointError, match=r"logits/semantic/weights \(1, 1, 256, 21\) vs \(1, 1, 256, 19\).*"
                                              "exclude logits_semantic"):
        import_weights(student, tmp_path / "voc.pkl")
    logits = student_variables(student)["logits/semantic/weights"].numpy().copy()
    report = import_weights(student, tmp_path / "voc.pkl", exclude=("logits_semantic",))
    assert set(report.skipped) == {"logits/semantic/weights", "logits/semantic/biases"}
    np.testing.assert_array_equal(student_variables(student)["logits/semantic/weights"].numpy(), logits)
    np.testing.assert_array_equal(student_variables(student)["aspp0/weights"].numpy(), voc["aspp0/weights"])


def test_ams_dict_round_trip(student, tmp_path):
    arrays = official_arrays(seed=2)
    ams = {f"{n}:0": a for n, a in arrays.items()}
    ams.update({"global_step:0": np.array(7), "aspp0/weights/Adam:0": np.zeros((1, 1, 320, 256)),
                "image_cache:0": np.zeros((2, 4, 4, 3))})  # the original filtered these out
    np.save(tmp_path / "student.npy", ams, allow_pickle=True)  # the original's np.save'd dict
    report = import_weights(student, tmp_path / "student.npy")
    assert len(report.loaded) == 272 and len(report.skipped) == 3
    _assert_loaded(student, arrays)
    export_ams_dict(student, tmp_path / "again.pkl")
    fresh = build_student(SPEC)
    import_weights(fresh, tmp_path / "again.pkl")
    _assert_loaded(fresh, arrays)
    with open(tmp_path / "again.pkl", "rb") as f:
        assert "MobilenetV2/Conv/weights:0" in pickle.load(f)
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        import_weights(student, tmp_path / "list.pkl")


def test_a_student_file_brings_its_architecture(tiny_student):
    """--student FILE adopts the width and head it was saved with; only an explicit --set that
    conflicts is refused, in one line."""
    from amslib.core.config import preset, with_overrides
    from amslib.models.student import adopt_student_file

    laptop = with_overrides(preset("laptop"), {"student": str(tiny_student)})
    assert (laptop.width_multiplier, laptop.head_channels) == (0.5, 256)
    adopted = adopt_student_file(laptop)
    assert (adopted.width_multiplier, adopted.head_channels) == (0.35, 16)
    assert adopt_student_file(laptop, {"seed"}).width_multiplier == 0.35
    explicit = with_overrides(laptop, {"width_multiplier": 0.5})
    with pytest.raises(ValueError, match=r"saved with width_multiplier=0.35, but --set width_multiplier=0.5"):
        adopt_student_file(explicit, {"width_multiplier"})
    assert adopt_student_file(preset("laptop")) == preset("laptop")  # the shipped default: nothing to adopt
