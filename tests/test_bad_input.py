"""Bad input, as a user or a damaged file gives it: each is a non-zero exit with one line that
says what was wrong and what to do, no traceback, and nothing left in --out."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from amslib.cli import main
from amslib.models.teachers import write_label_png

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "height=32", "fps=2", "width_multiplier=0.35", "head_channels=16", "iterations=2",
        "first_update_s=2", "update_interval_s=2", "batch_size=2", "max_seconds=4", "warmup_s=0"]


def error_lines(stderr: str) -> list[str]:
    """stderr without progress bars (a bar redraws itself with '\\r'; it is not an error line)."""
    parts = [p.strip() for line in stderr.splitlines() for p in line.split("\r")]
    return [p for p in parts if p and "%|" not in p]


def _clip(path: Path, *, frames: int = 20, fps: int = 4) -> Path:
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), (64, 32), fps=fps, macro_block_size=1)
    writer.send(None)
    for _ in range(frames):
        writer.send(np.full((32, 64, 3), 120, np.uint8))
    writer.close()
    return path


def _labels(folder: Path, *, count: int = 20, value: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_label_png(np.full((32, 64), value, np.uint8), folder / f"gt_{i:06d}.png")
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_student):
    """The broken inputs: every kind broken in the ways a user or a damaged file breaks it."""
    root = tmp_path_factory.mktemp("bad")
    (root / "junk.mp4").write_text("not a video")
    (root / "empty.mp4").write_bytes(b"")
    _clip(root / "clip.mp4")
    _labels(root / "gt")
    _labels(root / "gt200", value=200)
    (root / "nolabels").mkdir()
    (root / "junk.weights.h5").write_text("not a model")
    (root / "bad.csv").write_text("video_id,dataset\nx,y\n")
    (root / "trace.csv").write_text("time_s,kbps\n0,-5\n")
    (root / "occupied").mkdir()
    (root / "occupied" / "thesis.tex").write_text("precious")
    return {"root": root, "student": str(tiny_student)}


# (arguments, what the one line must say); {root}: the broken files, {out}: a fresh output folder
CASES = [
    # run: videos
    (["run", "--video", "no_such_video", "--out", "{out}"], "unknown video id 'no_such_video'"),
    (["run", "--video", "{root}/missing.mp4", "--labels", "{root}/gt", "--out", "{out}"], "video file not found"),
    (["run", "--video", "{root}/junk.mp4", "--labels", "{root}/gt", "--out", "{out}"],
     "cannot read video"),
    (["run", "--video", "{root}/empty.mp4", "--labels", "{root}/gt", "--out", "{out}"], "cannot read video"),
    (["run", "--video", "{root}/clip.mp4", "--out", "{out}"], "needs a teacher"),
    (["run", "--video", "synthetic:nowhere", "--out", "{out}"], "unknown synthetic video"),
    # run: parameters and their combinations
    (["run", "--set", "max_seconds=0.1", "--out", "{out}"], "holds no frame"),
    (["run", "--set", "fraction=1.5", "--out", "{out}"], "fraction must be in (0, 1]"),
    (["run", "--set", "warp_speed=9", "--out", "{out}"], "unknown parameter 'warp_speed'"),
    (["run", "--set", "fraction", "--out", "{out}"], "--set expects key=value"),
    (["run", "--set", "fraction=0.1", "--set", "fraction=0.2", "--out", "{out}"], "gives fraction twice"),
    (["run", "--set", "iterations=lots", "--out", "{out}"], "expects a int"),
    (["run", "--set", "sample_rate_fps=10", "--out", "{out}"], "above the run's fps"),
    (["run", "--set", "atr=true", "--out", "{out}"], "atr=true needs asr=true"),
    (["run", "--set", "optimizer_state=forget", "--out", "{out}"], "optimizer_state must be one of"),
    (["run", "--set", "devices=0", "--out", "{out}"], "devices must be >= 1"),
    (["run", "--set", "scheduler=lottery", "--out", "{out}"], "scheduler must be one of"),
    (["run", "--set", "server_time=tpu9", "--out", "{out}"], "server_time must be one of"),
    (["run", "--scheme", "edge_train", "--set", "edge_train_time=never", "--out", "{out}"], "edge_train_time must be one of"),
    (["run", "--set", "speedup=-2", "--out", "{out}"], "speedup must be > 0"),
    (["run", "--set", "server_time=fixed", "step_base_s=-1", "--out", "{out}"], "step_base_s must be >= 0"),
    (["run", "--set", "uplink_queue_s=-1", "--out", "{out}"], "uplink_queue_s must be >= 0"),
    (["run", "--scheme", "tent", "--set", "devices=2", "max_seconds=2", "--out", "{out}"], "adapts on the edge alone"),
    (["sweep", "capacity", "--set", "scheduler=lottery", "--out", "{out}"], "scheduler must be one of"),
    (["run", "--scheme", "magic", "--out", "{out}"], "scheme must be one of"),
    (["run", "--preset", "huge", "--out", "{out}"], "unknown preset 'huge'"),
    (["run", "--set", "uplink_trace={root}/missing.csv", "--out", "{out}"], "missing.csv"),
    (["run", "--set", "uplink_trace={root}/trace.csv", "--out", "{out}"], "trace"),
    # run: students
    (["run", "--student", "{root}/none.weights.h5", "--out", "{out}"], "student weights not found"),
    (["run", "--student", "{root}/junk.weights.h5", "--out", "{out}"], "not a student weights file"),
    (["run", "--student", "{student}", "--set", "width_multiplier=0.5", "--out", "{out}"],
     "saved with width_multiplier=0.35, but --set width_multiplier=0.5"),
    (["run", "--label-set", "voc21", "--video", "{root}/clip.mp4", "--labels", "{root}/gt", "--out", "{out}"],
     "shipped students know cityscapes19"),
    # run: labels and teachers
    (["run", "--video", "{root}/clip.mp4", "--labels", "{root}/missing", "--out", "{out}"], "label folder not found"),
    (["run", "--video", "{root}/clip.mp4", "--labels", "{root}/nolabels", "--out", "{out}"], "no gt_%06d.png files"),
    (["run", "--video", "{root}/clip.mp4", "--labels", "{root}/gt200", "--student", "{student}", *TINY,
      "--out", "{out}"], "outside cityscapes19's 0..18"),
    (["run", "--video", "{root}/clip.mp4", "--labels", "{root}/gt", "--teacher", "oracle", "--out", "{out}"],
     "not both"),
    (["run", "--teacher", "magic:x", "--out", "{out}"], "unknown teacher 'magic:x'"),
    (["run", "--teacher", "tflite:{root}/missing.tflite", "--video", "{root}/clip.mp4", "--out", "{out}"],
     "missing.tflite"),
    (["run", "--video", "outdoor_la", "--manifest", "{root}/bad.csv", "--out", "{out}"], "missing required column"),
    # run: where it writes
    (["run", "--student", "{student}", *TINY, "--out", "{root}/occupied"], "is not an earlier output"),
    # label
    (["label", "--video", "{root}/junk.mp4", "--teacher", "oracle", "--out", "{out}"], "Invalid data found"),
    (["label", "--video", "synthetic:street", "--teacher", "keras", "--out", "{out}"], "needs a target"),
    # download
    (["download", "outdoor_la", "--start", "5", "--end", "2", "--out", "{out}"], "end"),
    (["download", "no_such_video", "--out", "{out}"], "no_such_video"),
    (["download", "https://example.invalid/clip.mp4", "--from", "{root}/missing.mp4", "--out", "{out}"],
     "missing.mp4"),
    # pretrain
    (["pretrain", "--init", "{root}/missing.weights.h5", "--steps", "1", "--out", "{out}/s.weights.h5"],
     "--init weights not found"),
    (["pretrain", "--init", "{root}/junk.weights.h5", "--steps", "1", "--out", "{out}/s.weights.h5"],
     "cannot start from"),
    (["pretrain", "--video", "{root}/junk.mp4", "--teacher", "tflite:selfie", "--steps", "1",
      "--out", "{out}/s.weights.h5"], "Invalid data found"),
    # sweep and claims
    (["sweep", "vibes", "--out", "{out}"], "unknown experiment 'vibes'"),
    (["sweep", "strategies", "--axis", "fraction=2", "--out", "{out}"], "fraction must be in"),
    (["sweep", "strategies", "--set", "fraction=0.1", "fraction=0.3", "--out", "{out}"], "gives fraction twice"),
    (["claims", "--video", "{root}/clip.mp4", "--out", "{out}/claims.md", "--runs", "{out}/runs"], "needs a teacher"),
    (["claims", "--set", "atr=true", "--out", "{out}/claims.md", "--runs", "{out}/runs"], "atr=true needs asr=true"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a[:3]) + f" #{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_clear_line_and_leaves_nothing(args, message, files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "out"
    code = main([a.format(root=files["root"], out=out, student=files["student"]) for a in args])
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert code == 2, f"exit {code}; stderr: {captured.err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    err = lines[0]
    assert message in err, err
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    if "occupied" in " ".join(args):
        assert (files["root"] / "occupied" / "thesis.tex").read_text() == "precious"
    leftovers = [*tmp_path.glob(".out*"), *Path(files["root"]).glob(".occupied*")]  # no staging folder left
    assert not leftovers, leftovers


def test_missing_ffmpeg_on_an_h264_uplink_is_one_line(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-ffmpeg"))
    out = tmp_path / "out"
    code = main(["run", "--student", files["student"], *TINY, "uplink_codec=h264", "--out", str(out)])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "ffmpeg" in lines[0] and "uplink_codec=png" in lines[0] and not out.exists()


def test_a_video_shorter_than_its_header_ends_the_run_cleanly(files, tmp_path, capsys):
    """The header promises 20 frames; the file holds 12 (a cut download): the run stops at the
    real end, says so, and its tables hold the frames it got."""
    from amslib.analysis.results import load_result
    from amslib.data.video import FileVideo

    clip = _clip(tmp_path / "cut.mp4", frames=12)
    out = tmp_path / "out"
    original = FileVideo.__init__

    def promise_more(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.num_frames = 10  # 5 s at 2 fps: what a damaged header promises
    try:
        FileVideo.__init__ = promise_more
        code = main(["run", "--video", str(clip), "--labels", str(files["root"] / "gt"), "--student", files["student"],
                     *TINY[:-2], "warmup_s=0", "--out", str(out)])
    finally:
        FileVideo.__init__ = original
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "the video ended after 6 of the 10 frames" in captured.out
    assert len(load_result(out).frames) == 6  # 12 frames at 4 fps, read at 2 fps


def test_an_interrupted_run_leaves_no_output(files, tmp_path):
    """SIGINT mid-run (as Ctrl-C): exit 130, 'nothing was written', and no --out folder nor any
    half-written one beside it."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "amslib", "run", "--student", files["student"], "--set",
                             "height=32", "fps=2", "width_multiplier=0.35", "head_channels=16", "iterations=50",
                             "first_update_s=2", "update_interval_s=2", "batch_size=2", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    chunks: list[str] = []
    reader = threading.Thread(daemon=True, target=lambda: chunks.extend(
        b.decode(errors="replace") for b in iter(lambda: os.read(proc.stderr.fileno(), 4096), b"")))
    reader.start()  # stderr read as it comes (tqdm ends no line): its bar says the frame loop has begun
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and "frame/s" not in "".join(chunks) and proc.poll() is None:
        time.sleep(0.2)
    assert list(tmp_path.glob(".out.partial-*")), "the run never began"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    err = "".join(chunks)
    assert proc.returncode == 130, err
    assert "nothing was written" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))
