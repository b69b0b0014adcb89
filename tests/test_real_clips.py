"""The real-clip benchmark's table, its Markdown, the claims section read from a saved table,
and the example clips' lookup (the benchmark itself runs with `python -m amslib clips`)."""
import gzip
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from amslib.analysis.real_clips import (
    TABLE_COLUMNS,
    BenchmarkConfig,
    benchmark_markdown,
    claims_lines,
    clip_rows,
    load_benchmark,
    person_shares,
    save_benchmark,
)
from amslib.data import examples


class FakeResult:
    """What clip_rows reads of a RunResult: its summary, classes, size, and per-frame person
    counts on 10-pixel frames: the teacher's person on 2 pixels of each frame, the edge's on
    `shown` pixels (1 of them right) under model version 0, and `shown_after` once the model changed
    at the frame `changed_at` (None: never)."""

    classes = ("background", "person")
    config = SimpleNamespace(height=2, width=5)

    def __init__(self, miou, person, updates, frames=20, shown=1, shown_after=1, changed_at=None):
        version = np.zeros(frames, int) if changed_at is None else (np.arange(frames) >= changed_at).astype(int)
        shown_px = np.where(version > 0, shown_after, shown)
        tp = np.minimum(shown_px, 1)
        self.frames = pd.DataFrame({"t_s": np.arange(frames) / 5.0, "model_version": version})
        self._counts = np.zeros((frames, 2, 3), np.int64)
        self._counts[:, 1] = np.stack([tp, shown_px - tp, 2 - tp], axis=1)
        self._summary = {"duration_s": frames / 5.0, "iou_per_class": {"background": 90.0, "person": person},
                         "miou_pooled": miou, "miou_window": miou - 1, "uplink_kbps": 10.0 * updates,
                         "downlink_kbps": 20.0 * updates, "num_updates": updates}

    def summary(self):
        return self._summary

    def counts(self):
        return self._counts


def table_of(updates_long=6, updates_short=1):
    config = BenchmarkConfig(min_updates=3)
    rows = []
    for clip, updates in (("vtest", updates_long), ("carphone", updates_short)):
        results = {"none": FakeResult(50.0, 10.0, 0), "one_time": FakeResult(55.0, 20.0, 1, changed_at=5),
                   "ams": FakeResult(60.0, float("nan") if clip == "carphone" else 30.0, updates, changed_at=5)}
        rows += clip_rows(clip, results, {"none": 1.0, "one_time": 2.0, "ams": 3.0}, config)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def test_person_shares_known_answer():
    # 20 frames of 10 pixels: the teacher's person on 2 (20%); the edge shows 3 pixels for the
    # first 5 frames and none after its model changed at frame 5: 15 of 200 pixels (7.5%), 0 after
    truth, shown, updated = person_shares(FakeResult(50.0, 10.0, 1, shown=3, shown_after=0, changed_at=5))
    assert (truth, shown, updated) == pytest.approx((20.0, 7.5, 0.0))
    assert np.isnan(person_shares(FakeResult(50.0, 10.0, 0))[2])  # the model never changed


def test_a_clip_whose_updates_erase_the_person_class_is_marked():
    results = {"none": FakeResult(50.0, 10.0, 0), "ams": FakeResult(49.0, 0.0, 4, shown_after=0, changed_at=5)}
    rows = clip_rows("vtest", results, {"none": 1.0, "ams": 3.0}, BenchmarkConfig(min_updates=3))
    assert [r["note"] for r in rows] == ["AMS's updates erased the person class (none shown after the first)"] * 2
    assert rows[1]["pred_person_pct_updated"] == 0.0 and rows[0]["truth_person_pct"] == pytest.approx(20.0)
    short = clip_rows("vtest", results, {"none": 1.0, "ams": 3.0}, BenchmarkConfig(min_updates=5))
    assert short[0]["note"] == ("too short for AMS to pay: 4 update(s) (fewer than 5); "
                                "AMS's updates erased the person class (none shown after the first)")


def test_a_clip_with_too_few_updates_is_marked_on_every_row():
    table = table_of(updates_long=6, updates_short=2)
    short = table[table["clip"] == "carphone"]["note"]
    assert (short == "too short for AMS to pay: 2 update(s) (fewer than 3)").all()
    assert (table[table["clip"] == "vtest"]["note"] == "").all()


def test_markdown_has_a_row_per_clip_and_a_dash_for_an_undefined_iou():
    text = benchmark_markdown(table_of())
    lines = text.splitlines()
    assert lines[0] == "| clip | s | person px % | `none` | `one_time` | `ams` | AMS updates | note |"
    assert lines[2] == "| `vtest` | 4.0 | 20.0 | 50.0 / 10.0 | 55.0 / 20.0 | 60.0 / 30.0 | 6 |  |"
    assert lines[3].startswith("| `carphone` | 4.0 | 20.0 | 50.0 / 10.0 | 55.0 / 20.0 | 60.0 / - | 1 | too short")


def test_claims_read_the_saved_table_and_say_when_it_is_missing(tmp_path):
    timings = {"label_s": {"vtest": 2.0, "carphone": 1.0}, "pretrain_s": {"vtest": 40.0}, "runs_s": {"vtest": 60.0}}
    path = save_benchmark(table_of(), timings, BenchmarkConfig(clips=("vtest", "carphone")), tmp_path / "t.csv")
    table, sidecar = load_benchmark(path)
    assert sidecar["timings_s"] == timings and sidecar["config"]["clips"] == ["vtest", "carphone"]
    assert np.isnan(table.loc[table["clip"] == "carphone"].set_index("scheme").at["ams", "iou_person"])
    lines = claims_lines(table, sidecar, source=str(path))
    assert "labelling 3 s, pretraining 40 s, runs 60 s" in lines[0]
    assert "| `vtest` | yes (+10.0 points) | yes (+5.0 points) |" in lines
    assert any(line.startswith("| `carphone` | yes (+10.0 points); too short for AMS to pay") for line in lines)
    missing = claims_lines(None, {}, source="docs/none.csv")
    assert len(missing) == 1 and "python -m amslib clips" in missing[0]
    with pytest.raises(FileNotFoundError, match="python -m amslib clips"):
        load_benchmark(tmp_path / "absent.csv")


def test_opencv_doc_clips_unpack_once_and_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    doc = tmp_path / "doc" / "opencv4" / "html"
    doc.mkdir(parents=True)
    with gzip.open(doc / "cup.mp4.gz", "wb") as f:
        f.write(b"video bytes")
    first = examples._opencv_doc_clip("cup", "opencv4/html/cup.mp4.gz", root=tmp_path / "doc")
    assert first.read_bytes() == b"video bytes" and first.parent == tmp_path / "data" / "examples"
    assert examples._opencv_doc_clip("cup", "opencv4/html/cup.mp4.gz", root=tmp_path / "doc") == first
    with pytest.raises(FileNotFoundError, match="apt-get install opencv-doc"):
        examples._opencv_doc_clip("vtest", "examples/data/vtest.avi", root=tmp_path / "doc")
    with pytest.raises(ValueError, match="unknown example clip 'nope'"):
        examples.example_clip("nope")


@pytest.mark.parametrize("args, message", [
    (["--clips", "carphone"], "needs two or more"),
    (["--clips", "carphone,nope"], "unknown: nope"),
    (["--clips", "carphone,bikes", "--held-out", "vtest"], "--held-out must name clips of --clips"),
    (["--clips", "carphone,bikes", "--schemes", "none,amz"], "scheme must be one of none, one_time, ams"),
    (["--clips", "carphone,bikes", "--set", "lr=7"], "lr must be in (0, 1)"),
])
def test_clips_command_refuses_bad_arguments_in_one_line(args, message, tmp_path, capsys):
    from amslib.cli import main

    code = main(["clips", *args, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "runs").exists()
