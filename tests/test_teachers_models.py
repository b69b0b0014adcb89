"""Teacher specs and model teachers: a DeepLab-signature frozen graph built here (loaded by
the official tensor names, fetched by model name with a checksum from a local server), the
real MediaPipe selfie-segmentation TFLite model on a real clip, Keras files, label folders
with COCO -> VOC ids, and the `label` command with its cache."""
import hashlib
import io
import tarfile

import numpy as np
import pytest
from local_http import serve_directory
from PIL import Image

from amslib.cli import main
from amslib.core.labels import CITYSCAPES19, VOC21, coco_to_voc_table
from amslib.models.teachers import LabelFolderTeacher, OracleTeacher, label_video, write_label_png
from amslib.models.zoo import FrozenGraphTeacher, TeacherError, TFLiteTeacher, ZooModel, parse_spec, parse_teacher

# --------------------------------------------------------------------------- specs


def test_parse_spec_known_answers():
    assert parse_spec("oracle").kind == "oracle"
    spec = parse_spec("labels:/data/lvs/gt?map=coco&labels=voc21")
    assert (spec.kind, spec.target, spec.option("map"), spec.option("labels")) == (
        "labels", "/data/lvs/gt", "coco", "voc21")
    assert parse_spec("deeplab:C:/models/x.pb").target == "C:/models/x.pb"  # only the first ':' splits
    assert parse_spec("tflite:m.tflite?range=-1,1").option("range") == "-1,1"


@pytest.mark.parametrize("spec, message", [
    ("magic:x", "unknown teacher 'magic:x'; give oracle, rvm, deeplab:MODEL_NAME"),
    ("deeplab", "needs a target"),
    ("oracle:x", "takes no target"),
    ("tflite:m.tflite?colour=red", "unknown option(s) colour for a tflite teacher; allowed: labels, range"),
    ("tflite:m.tflite?range=0", "range '0' must be two numbers LOW,HIGH"),
    ("tflite:m.tflite", None),
])
def test_bad_specs(spec, message, tmp_path):
    if message is None:  # parses, but the model file is missing
        with pytest.raises(TeacherError, match="TFLite model not found"):
            parse_teacher(spec)
        return
    with pytest.raises(TeacherError) as err:
        parse_teacher(spec)
    assert message in str(err.value)


def test_coco_to_voc_known_answers():
    official, contiguous = coco_to_voc_table(), coco_to_voc_table(contiguous=True)
    voc = VOC21.names.index
    assert official[1] == voc("person") and official[3] == voc("car") and official[4] == voc("motorbike")
    assert official[72] == voc("tvmonitor") and official[63] == voc("sofa")
    assert official[8] == 0 and official[0] == 0 and official[255] == 255  # truck -> background
    assert contiguous[1] == voc("person") and contiguous[9] == voc("boat") and contiguous[8] == 0
    assert contiguous[63] == voc("tvmonitor")  # tv is the 63rd of COCO's 80 classes (1-based)
    assert sorted(set(official.tolist()) - {255}) == list(range(21))  # every VOC class reachable


def test_label_folder_with_coco_map(tmp_path):
    label = np.array([[0, 1], [3, 8]], np.uint8)  # background, person, car, truck (COCO ids)
    write_label_png(label, tmp_path / "gt_000000.png")
    teacher = parse_teacher(f"labels:{tmp_path}?map=coco")
    assert isinstance(teacher, LabelFolderTeacher) and teacher.label_set == "voc21"

    class One:
        height, width = 2, 2
    np.testing.assert_array_equal(teacher.labels(One(), 0, 1)[0], [[0, 15], [7, 0]])
    assert teacher.present_classes(VOC21.names) == ("background", "car", "person")
    assert parse_teacher(f"labels:{tmp_path}").name != teacher.name  # the map is part of the cache key
    assert isinstance(parse_teacher("oracle"), OracleTeacher)


# --------------------------------------------------------------------------- DeepLab frozen graph

# A "model" with DeepLab's exported signature: per pixel, logits for (road, person, sky)
# = pixel @ W, then the argmax as a Cityscapes train id. Grey -> road, red -> person, blue -> sky.
_W = [[0.0667, 1.0, -1.0], [0.0667, -1.0, -1.0], [0.0667, -1.0, 1.0]]
_IDS = [CITYSCAPES19.names.index(n) for n in ("road", "person", "sky")]


def write_deeplab_like_graph(path, *, input_name="ImageTensor", output_name="SemanticPredictions"):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [1, None, None, 3], name=input_name)
        logits = tf.tensordot(tf.cast(image, tf.float32), tf.constant(_W), axes=[[3], [0]])
        ids = tf.gather(tf.constant(_IDS, tf.int64), tf.argmax(logits, axis=-1))
        tf.identity(ids, name=output_name)
    path.write_bytes(graph.as_graph_def().SerializeToString())


def colour_frames() -> np.ndarray:
    """(2, 4, 6, 3): grey road below, red person left, blue sky top right."""
    frames = np.full((2, 4, 6, 3), 128, np.uint8)
    frames[:, :2, :3] = (255, 0, 0)
    frames[:, :2, 3:] = (0, 0, 255)
    return frames


EXPECTED = np.array([[11, 11, 11, 10, 10, 10]] * 2 + [[0] * 6] * 2, np.uint8)


def test_frozen_graph_teacher_by_official_tensor_names(tmp_path):
    write_deeplab_like_graph(tmp_path / "frozen_inference_graph.pb")
    teacher = parse_teacher(f"deeplab:{tmp_path / 'frozen_inference_graph.pb'}")
    assert isinstance(teacher, FrozenGraphTeacher) and teacher.label_set == "cityscapes19"
    out = teacher.label(colour_frames())
    assert out.dtype == np.uint8 and out.shape == (2, 4, 6)
    np.testing.assert_array_equal(out, np.stack([EXPECTED, EXPECTED]))

    write_deeplab_like_graph(tmp_path / "other.pb", output_name="Predictions")
    with pytest.raises(TeacherError, match="not a DeepLab export"):
        parse_teacher(f"deeplab:{tmp_path / 'other.pb'}").label(colour_frames())
    (tmp_path / "junk.pb").write_bytes(b"\x01\x02 not a graph")
    with pytest.raises(TeacherError, match="not a frozen TensorFlow graph"):
        parse_teacher(f"deeplab:{tmp_path / 'junk.pb'}").label(colour_frames())


def _zoo_tarball(path, graph: bytes) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("deeplabv3_test_2018/frozen_inference_graph.pb", graph),
                           ("deeplabv3_test_2018/model.ckpt.index", b"index")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deeplab_model_by_name_is_fetched_once_with_its_checksum(tmp_path):
    write_deeplab_like_graph(tmp_path / "g.pb")
    www = tmp_path / "www"
    www.mkdir()
    digest = _zoo_tarball(www / "deeplabv3_test.tar.gz", (tmp_path / "g.pb").read_bytes())
    models = tmp_path / "models"
    with serve_directory(www) as server:
        url = server.url("deeplabv3_test.tar.gz")
        bad = {"test_model": ZooModel("test_model", "cityscapes19", "x", url, "0" * 64, "")}
        with pytest.raises(ValueError, match="checksum mismatch.*nothing was kept"):
            parse_teacher("deeplab:test_model", zoo=bad, models_root=models)
        assert not any(models.iterdir())
        zoo = {"test_model": ZooModel("test_model", "cityscapes19", "x", url, digest, "")}
        teacher = parse_teacher("deeplab:test_model", zoo=zoo, models_root=models)
        np.testing.assert_array_equal(teacher.label(colour_frames())[0], EXPECTED)
        requests = len(server.log)
        again = parse_teacher("deeplab:test_model", zoo=zoo, models_root=models)
        assert len(server.log) == requests and again.name == teacher.name == "deeplab-test_model"
    assert sorted(p.name for p in (models / "test_model").iterdir()) == [
        "frozen_inference_graph.pb", "model.ckpt.index", "source.txt"]
    assert digest in (models / "test_model" / "source.txt").read_text()
    with pytest.raises(TeacherError, match="unknown DeepLab model 'nope'; known: xception65_cityscapes"):
        parse_teacher("deeplab:nope")


# --------------------------------------------------------------------------- TFLite on a real clip


@pytest.fixture(scope="module")
def carphone():
    from amslib.data.examples import example_clip
    return example_clip("carphone")


def test_selfie_tflite_teacher_finds_the_man_in_the_car(carphone):
    from amslib.data.video import open_video

    video = open_video(str(carphone), height=64, fps=5, label_set="voc21", classes=("background", "person"))
    frames = video.frames(0, video.num_frames)
    teacher = parse_teacher("tflite:selfie_landscape")
    assert isinstance(teacher, TFLiteTeacher) and teacher.classes == ("background", "person")
    labels = teacher.label(frames)
    assert labels.shape == frames.shape[:3] and set(np.unique(labels)) == {0, 15}
    # The man fills the lower middle of every frame; the car window (top right) is background.
    assert (labels[:, 40:, 40:90] == 15).mean() > 0.9
    assert (labels[:, :16, 104:] == 0).mean() > 0.95
    assert 0.3 < (labels == 15).mean() < 0.6
    general = parse_teacher("tflite:selfie").label(frames)  # the square model agrees
    assert (general == labels).mean() > 0.9


# --------------------------------------------------------------------------- Keras files


def test_keras_file_teacher(tmp_path):
    import keras

    from amslib.models.student import Predictor

    keras.utils.set_random_seed(0)  # a tiny per-pixel classifier over VOC's 21 classes
    model = keras.Sequential([keras.Input((32, 64, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(21, 3, padding="same")])
    model.save(tmp_path / "m.keras")
    teacher = parse_teacher(f"keras:{tmp_path / 'm.keras'}")
    assert teacher.label_set == "voc21"
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(teacher.label(frames), Predictor(model)(frames))
    bigger = teacher.label(np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2))  # resized in and out
    assert bigger.shape == (3, 64, 128) and (bigger[:, ::2, ::2] == Predictor(model)(frames)).mean() > 0.8
    with pytest.raises(TeacherError, match="cannot load Keras model"):
        (tmp_path / "bad.keras").write_bytes(b"nope")
        parse_teacher(f"keras:{tmp_path / 'bad.keras'}")


# --------------------------------------------------------------------------- the label command


def test_label_command_writes_one_png_per_frame_then_serves_the_cache(carphone, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    args = ["label", "--video", str(carphone), "--teacher", "tflite:selfie_landscape", "--height", "128"]
    assert main([*args, "--out", str(tmp_path / "gt")]) == 0
    files = sorted(p.name for p in (tmp_path / "gt").iterdir())
    assert len(files) == 120 and files[0] == "gt_000000.png" and files[-1] == "gt_000119.png"
    assert "with tflite-" in capsys.readouterr().out
    label = np.asarray(Image.open(tmp_path / "gt" / "gt_000060.png"))
    assert label.shape == (128, 256) and set(np.unique(label)) == {0, 15}
    for again in range(3):
        assert main([*args, "--out", str(tmp_path / f"again{again}")]) == 0
        assert "from the cache" in capsys.readouterr().out
        assert sorted(p.name for p in (tmp_path / f"again{again}").iterdir()) == files


def test_cached_labelling_neither_decodes_the_video_nor_runs_the_teacher(carphone, tmp_path):
    """A second labelling is served from the cache: the teacher never runs and no frame is
    decoded (its speed-up is a benchmark's: `python -m amslib bench`, label_cache_speedup)."""
    from amslib.data.video import open_video

    video = open_video(str(carphone), height=128, fps=30000 / 1001, label_set="voc21")
    teacher = parse_teacher("tflite:selfie_landscape")
    first = label_video(video, teacher, tmp_path / "gt", cache_root=tmp_path / "cache")
    calls = []
    teacher.label = lambda frames: calls.append("teacher")  # a cached call must not get here
    video.frames = lambda start, stop: calls.append("decode")
    cached = [label_video(video, teacher, tmp_path / f"gt{i}", cache_root=tmp_path / "cache") for i in range(3)]
    assert not first.cached and all(r.cached for r in cached) and first.frames == 120 and calls == []
    assert sorted(p.name for p in (tmp_path / "gt0").iterdir()) == sorted(p.name for p in (tmp_path / "gt").iterdir())
    best = min(r.seconds for r in cached)
    print(f"labelling 120 frames: first {first.seconds:.2f} s, from the cache {best:.3f} s "
          f"({first.seconds / best:.0f}x)")


def test_label_errors_are_one_line_and_write_nothing(carphone, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    for teacher, message in (("bogus", "unknown teacher 'bogus'"),
                             ("tflite:/no/model.tflite", "TFLite model not found"),
                             ("oracle", "only knows synthetic videos")):
        code = main(["label", "--video", str(carphone), "--teacher", teacher, "--out", str(tmp_path / "gt")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err[-1].startswith("error: ") and message in err[-1], err
        assert not (tmp_path / "gt").exists() and not list(tmp_path.glob(".gt*"))


def test_label_video_resumes_an_interrupted_cache(carphone, tmp_path):
    from amslib.data.video import open_video

    video = open_video(str(carphone), height=32, fps=10, label_set="voc21", classes=("background", "person"))
    calls = []

    class Counting(TFLiteTeacher):
        def label(self, frames):
            calls.append(len(frames))
            if len(calls) == 2:
                raise KeyboardInterrupt
            return super().label(frames)
    from amslib.models.zoo import ASSETS
    teacher = Counting(ASSETS / "selfie_segmentation_landscape.tflite")
    with pytest.raises(KeyboardInterrupt):
        label_video(video, teacher, tmp_path / "gt", cache_root=tmp_path / "cache", chunk=16)
    assert not (tmp_path / "gt").exists()
    report = label_video(video, teacher, tmp_path / "gt", cache_root=tmp_path / "cache", chunk=16)
    assert calls == [16, 16, 16, 8] and report.frames == 40 and not report.cached  # chunk 1 reused
    assert len(list((tmp_path / "gt").iterdir())) == 40
    names = sorted(p.name for p in (tmp_path / "gt").iterdir())
    assert names[:2] == ["gt_000000.png", "gt_000003.png"]  # native indices at 29.97 -> 10 fps
