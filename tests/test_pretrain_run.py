"""`pretrain` from teachers on several local videos (starting from an original checkpoint),
then `run --student` from its output with a model teacher on a real clip. Tiny sizes: these
check the wiring, not accuracy; one pretraining and one run keep the file fast."""
import json

import numpy as np
import pytest

from amslib.cli import main
from amslib.models.teachers import write_label_png

TINY_RUN = ["--set", "height=32", "fps=2", "width_multiplier=0.35", "iterations=2", "first_update_s=2",
            "update_interval_s=2", "batch_size=2", "warmup_s=0"]


def make_labelled_clip(folder, *, seconds=4, fps=4):
    """A 32x64 clip (a red 'person' on grey) and its gt_%06d.png folder in VOC ids."""
    import imageio_ffmpeg
    folder.mkdir(parents=True)
    frame = np.full((32, 64, 3), 110, np.uint8)
    frame[8:, 24:40] = (200, 40, 40)
    writer = imageio_ffmpeg.write_frames(str(folder / "v.mp4"), (64, 32), fps=fps, macro_block_size=1)
    writer.send(None)
    for _ in range(seconds * fps):
        writer.send(frame)
    writer.close()
    (folder / "gt").mkdir()
    label = np.zeros((32, 64), np.uint8)
    label[8:, 24:40] = 15  # VOC person
    for i in range(seconds * fps):
        write_label_png(label, folder / "gt" / f"gt_{i:06d}.png")
    return folder / "v.mp4", folder / "gt"


@pytest.fixture
def clip(tmp_path, monkeypatch):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    return make_labelled_clip(tmp_path / "a")


@pytest.fixture
def voc_checkpoint(tmp_path):
    """A TF1 checkpoint under the official names, of a 21-class width-0.35 student."""
    from amslib.models.checkpoints import student_variables, write_tf1_checkpoint
    from amslib.models.student import StudentSpec, build_student

    voc = build_student(StudentSpec(num_classes=21, height=32, width=64, width_multiplier=0.35))
    write_tf1_checkpoint({n: v.numpy() for n, v in student_variables(voc).items()}, tmp_path / "model.ckpt")
    return tmp_path / "model.ckpt"


def test_pretrain_on_two_videos_from_a_checkpoint_then_run_from_it(clip, voc_checkpoint, tmp_path, capsys):
    from amslib.data.examples import example_clip

    video, gt = clip
    carphone = str(example_clip("carphone"))
    out = tmp_path / "student.weights.h5"
    code = main(["pretrain", "--video", str(video), "--teacher", f"labels:{gt}?labels=voc21",
                 "--video", carphone, "--teacher", "tflite:selfie_landscape", "--init", str(voc_checkpoint),
                 "--height", "32", "--width-multiplier", "0.35", "--steps", "20", "--samples", "16",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file() and "16 frames (voc21)" in captured.out
    code = main(["run", "--video", carphone, "--teacher", "tflite:selfie_landscape", "--student", str(out),
                 "--frame-cache", "--scheme", "ams", "--out", str(tmp_path / "run"), *TINY_RUN])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["iou_per_class"]) == {"background", "person"} and summary["num_updates"] == 1
    data = tmp_path / "data"
    assert len(list((data / "labels").rglob("gt_*.png"))) >= 8  # the teacher's labels are cached
    assert len(list((data / "frames").glob("*.npy"))) == 1  # and so are the decoded frames


@pytest.mark.parametrize("extra, message", [
    (["--teacher", "labels:{gt}", "--teacher", "labels:{gt}", "--teacher", "oracle"],
     "1 --video but 3 --teacher"),
    (["--teacher", "tflite:selfie", "--label-set", "cityscapes19"],
     "--label-set cityscapes19 does not match the teachers' label set(s) voc21"),
    (["--teacher", "labels:{gt}", "--label-set", "cityscapes19", "--init", "{ckpt}", "--height", "32",
      "--width-multiplier", "0.35"], "logits/semantic/weights (1, 1, 256, 21) vs (1, 1, 256, 19)"),
])
def test_pretrain_errors_are_one_line(clip, voc_checkpoint, tmp_path, capsys, extra, message):
    video, gt = clip
    out = tmp_path / "s.weights.h5"
    code = main(["pretrain", "--video", str(video), *[e.format(gt=gt, ckpt=voc_checkpoint) for e in extra],
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()
