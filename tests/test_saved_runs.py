"""Saved runs found again: the listing (`python -m amslib runs`, `list_runs`), a damaged
folder skipped in one line, and `load_run` feeding the tables and plots."""
import shutil

import pandas as pd
import pytest
from conftest import TinyOracle, TinyVideo, tiny_config

from amslib.analysis.plots import timeline_figure
from amslib.analysis.results import comparison_table, save_result
from amslib.analysis.runs import simulate
from amslib.analysis.saved_runs import DamagedRun, list_runs, load_run
from amslib.cli import main
from amslib.core.files import write_checksums
from amslib.sim.engine import Students


@pytest.fixture(scope="module")
def saved(tiny_student, tmp_path_factory):
    """Two 10-s AMS runs of the tiny video, differing in `fraction` only, saved as a sweep
    saves them (root/sweep/runs/<job>/); returns (root, {run: result})."""
    root = tmp_path_factory.mktemp("saved")
    students = Students.load(tiny_config(tiny_student), TinyVideo())
    results = {}
    for name, fraction in (("sweep/runs/fraction=0.1", 0.1), ("sweep/runs/fraction=0.3", 0.3)):
        config = tiny_config(tiny_student, max_seconds=10.0, first_update_s=4.0, update_interval_s=4.0,
                             fraction=fraction)
        results[name] = simulate(config, video=TinyVideo(), teacher=TinyOracle(), students=students)
        save_result(results[name], root / name)
    return root, results


def test_listing_shows_the_parameter_that_differs(saved):
    root, results = saved
    table = list_runs(root, sort_by="fraction", descending=True)
    assert list(table.columns) == ["run", "scheme", "video", "fraction", "miou_window", "uplink_kbps",
                                   "downlink_kbps", "num_updates", "date", "path"]
    assert list(table["run"]) == ["sweep/runs/fraction=0.3", "sweep/runs/fraction=0.1"]
    assert list(table["fraction"]) == [0.3, 0.1] and set(table["scheme"]) == {"ams"}
    for row in table.itertuples():
        summary = results[row.run].summary()
        assert row.num_updates == summary["num_updates"] == 2  # at 4 and 8 s of a 10-s run
        assert row.miou_window == pytest.approx(summary["miou_window"])
        assert row.downlink_kbps == pytest.approx(summary["downlink_kbps"]) and row.downlink_kbps > 0
    with pytest.raises(ValueError, match="has scheme jit; its runs have scheme: ams"):
        list_runs(root, scheme="jit")
    with pytest.raises(ValueError, match="cannot sort by 'lr'"):
        list_runs(root, sort_by="lr")  # equal in both runs: not a column


def test_damaged_runs_are_skipped_with_one_line_each(saved, tmp_path, capsys):
    root, _ = saved
    shutil.copytree(root / "sweep", tmp_path / "sweep")
    good = tmp_path / "sweep" / "runs" / "fraction=0.1"
    partial = tmp_path / "partial"
    shutil.copytree(good, partial)
    (partial / "frames.csv").unlink()
    garbled = tmp_path / "garbled"
    shutil.copytree(good, garbled)
    (garbled / "config.json").write_text("{not json")
    changed = tmp_path / "cached"
    shutil.copytree(good, changed)
    write_checksums(changed)  # as the live panel's run cache saves a run
    with open(changed / "frames.csv", "a") as f:
        f.write("1,2,3\n")
    (tmp_path / ".sweep.partial-x").mkdir()  # an output still being written: not searched
    (tmp_path / ".sweep.partial-x" / "config.json").write_text("{}")

    skipped = {}
    table = list_runs(tmp_path, on_skip=lambda folder, reason: skipped.setdefault(folder.name, reason))
    assert sorted(table["run"]) == ["sweep/runs/fraction=0.1", "sweep/runs/fraction=0.3"]
    assert skipped.keys() == {"partial", "garbled", "cached"}
    assert "missing frames.csv" in skipped["partial"] and "config.json is unreadable" in skipped["garbled"]
    assert "frames.csv missing or changed" in skipped["cached"]
    with pytest.raises(DamagedRun, match="missing frames.csv"):
        load_run(partial)

    code = main(["runs", str(tmp_path), "--scheme", "ams"])
    out, err = capsys.readouterr()
    assert code == 0
    notices = err.strip().splitlines()
    assert len(notices) == 3 and all(line.startswith("skipped ") for line in notices), err
    header, *rows = out.splitlines()[:3]
    assert header.split() == ["run", "scheme", "video", "fraction", "miou_window", "uplink_kbps", "downlink_kbps",
                              "num_updates", "date"]
    assert rows[0].split()[:4] == ["sweep/runs/fraction=0.1", "ams", "tiny", "0.1"]  # oldest first


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nowhere", "no such folder"),
    (lambda tmp: tmp, "holds no saved runs"),
])
def test_runs_command_on_a_folder_without_runs_is_one_error_line(make, message, tmp_path, capsys):
    code = main(["runs", str(make(tmp_path))])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err


def test_load_run_round_trip_feeds_the_tables_and_plots(saved):
    root, results = saved
    loaded = {name: load_run(root / name) for name in results}
    pd.testing.assert_frame_equal(comparison_table(loaded), comparison_table(results))
    figure = timeline_figure(loaded)
    first = "sweep/runs/fraction=0.1"
    assert [trace.name for trace in figure.data[:3]] == [first, f"{first}: downlink (updates)",
                                                          f"{first}: uplink (frames), dotted"]
    with pytest.raises(FileNotFoundError, match=r"is not a saved run .*; it holds 2 run\(s\)"):
        load_run(root / "sweep")


def test_run_picker_overlays_the_runs_picked(saved):
    from amslib.ui.run_picker import RunPicker

    root, results = saved
    picker = RunPicker(list_runs(root, sort_by="run"), selected=1)
    assert list(picker.results()) == ["sweep/runs/fraction=0.1"]
    picker.select.value = tuple(results)
    assert picker.summary()["miou_window"].tolist() == [results[n].summary()["miou_window"] for n in results]
    assert len(picker.figure().data) == 3 * len(results)
