"""The command line as a user runs it: one clear error line, non-zero exit, nothing written."""
import json
import subprocess
import sys

import numpy as np
import pytest

from amslib.cli import main
from amslib.models.teachers import write_label_png

TINY = ["--set", "height=32", "fps=2", "width_multiplier=0.35", "head_channels=16",
        "iterations=2", "first_update_s=2", "update_interval_s=2", "batch_size=2"]


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("args, message", [
    (["run", "--video", "no_such_video", "--out", "{out}"], "unknown video id 'no_such_video'"),
    (["run", "--video", "{tmp}/missing.mp4", "--out", "{out}"], "video file not found"),
    (["run", "--set", "update_interval_s=-5", "--out", "{out}"], "update_interval_s must be > 0"),
    (["run", "--set", "fraction=1.5", "--out", "{out}"], r"fraction must be in (0, 1]"),
    (["run", "--set", "fraction=0", "--out", "{out}"], r"fraction must be in (0, 1]"),
    (["run", "--scheme", "magic", "--out", "{out}"], "scheme must be one of"),
    (["run", "--preset", "huge", "--out", "{out}"], "unknown preset 'huge'"),
    (["run", "--student", "{tmp}/none.weights.h5", "--set", "max_seconds=1", "--out", "{out}"],
     "student weights not found"),
    (["run", "--video", "outdoor_la", "--manifest", "{tmp}/bad.csv", "--out", "{out}"],
     "column 'access'"),
])
def test_bad_input_is_one_line_and_writes_nothing(args, message, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text(
        "video_id,dataset,title,url,start_s,end_s,camera,classes,label_set,access,notes\n"
        "outdoor_la,outdoor_scenes,LA,https://www.youtube.com/watch?v=x,1,2,dashcam,road;sky,"
        "cityscapes19,carrier_pigeon,\n")
    out = tmp_path / "out"
    args = [a.format(tmp=tmp_path, out=out) for a in args]
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert not out.exists()


def test_run_on_local_file_with_label_folder(tmp_path, capsys, tiny_student):
    import imageio_ffmpeg
    frames = np.zeros((40, 32, 64, 3), np.uint8)
    frames[:, :16] = (120, 170, 240)   # sky above, road below
    frames[:, 16:] = (110, 110, 110)
    writer = imageio_ffmpeg.write_frames(str(tmp_path / "v.mp4"), (64, 32), fps=4, macro_block_size=1)
    writer.send(None)
    for f in frames:
        writer.send(f)
    writer.close()
    (tmp_path / "gt").mkdir()
    label = np.zeros((32, 64), np.uint8)
    label[:16] = 10
    for i in range(40):
        write_label_png(label, tmp_path / "gt" / f"gt_{i:06d}.png")
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(["run", "--video", str(tmp_path / "v.mp4"), "--labels", str(tmp_path / "gt"),
                                    "--student", str(tiny_student), "--scheme", "ams", "--out", str(out),
                                    *TINY, "warmup_s=0"], capsys)
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_updates"] == 4  # at 2, 4, 6, 8 s of a 10 s clip
    assert set(summary["iou_per_class"]) == {"road", "sky"}
    assert summary["uplink_kbps"] > 0 and summary["downlink_kbps"] > 0
    assert "miou_window" in stdout


def test_file_video_without_labels_is_an_error(tmp_path, capsys):
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(tmp_path / "v.mp4"), (64, 32), fps=4, macro_block_size=1)
    writer.send(None)
    writer.send(np.zeros((32, 64, 3), np.uint8))
    writer.close()
    code, _, stderr = run_cli(["run", "--video", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "needs a teacher" in stderr


def test_module_entry_point_reports_usage():
    proc = subprocess.run([sys.executable, "-m", "amslib", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "demo" in proc.stdout and "run" in proc.stdout


def _write_clip(path, frames, fps=4):
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=fps, macro_block_size=1)
    writer.send(None)
    for f in frames:
        writer.send(f)
    writer.close()


def test_manifest_video_uses_the_manifests_classes_in_the_cli_and_the_api(tmp_path, capsys, tiny_student,
                                                                            monkeypatch):
    """The label folder holds sky, building and road; the manifest names road and sky: the CLI
    and the notebook API both score the manifest's two."""
    import amslib as ams
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "videos").mkdir(parents=True)
    frames = np.zeros((40, 32, 64, 3), np.uint8)
    frames[:, :10], frames[:, 10:16], frames[:, 16:] = (120, 170, 240), (180, 90, 60), (110, 110, 110)
    _write_clip(tmp_path / "data" / "videos" / "tiny_street.mp4", frames)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video_id,dataset,title,url,start_s,end_s,camera,classes,label_set,access,notes\n"
                        "tiny_street,outdoor_scenes,Tiny street,https://example.invalid/v,0,10,dashcam,"
                        "road;sky,cityscapes19,youtube,test clip\n")
    label = np.zeros((32, 64), np.uint8)
    label[:10], label[10:16] = 10, 2  # sky, building; road (0) below
    (tmp_path / "gt").mkdir()
    for i in range(40):
        write_label_png(label, tmp_path / "gt" / f"gt_{i:06d}.png")
    out = tmp_path / "run"
    code, _, stderr = run_cli(["run", "--video", "tiny_street", "--manifest", str(manifest), "--labels",
                               str(tmp_path / "gt"), "--student", str(tiny_student), "--out", str(out),
                               *TINY, "warmup_s=0", "max_seconds=4"], capsys)
    assert code == 0, stderr
    cli_classes = json.loads((out / "config.json").read_text())["classes"]
    api_classes = ams.open_video("tiny_street", height=32, fps=2.0, manifest=str(manifest)).classes
    assert tuple(cli_classes) == tuple(api_classes) == ("road", "sky")
    code, _, _ = run_cli(["run", "--video", "tiny_street", "--manifest", str(manifest), "--labels",
                          str(tmp_path / "gt"), "--student", str(tiny_student), "--out", str(tmp_path / "run2"),
                          "--classes", "sky;building", *TINY, "warmup_s=0", "max_seconds=4"], capsys)
    assert code == 0
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["classes"] == ["sky", "building"]
