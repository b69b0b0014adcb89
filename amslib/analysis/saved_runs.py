"""Saved runs, found again: every run folder under a folder (what `results.save_result`
writes: config.json, frames.csv, updates.csv, summary.json), listed as one table, and one
loaded back as a `RunResult` the tables and plots accept.

Every command saves runs in that form, at its own depth: `python -m amslib run --out DIR`
(DIR), `demo` (runs/demo/<scheme>/), `sweep` and `run_experiment(out=...)`
(OUT/runs/<job>/, a fleet's devices at OUT/runs/<job>/device_<k>/), `claims`
(runs/claims/<video>/<name>/), `clips` (runs/clips/<clip>/<scheme>/) and the live panel's
reference runs (<data root>/runs/<scheme>-<key>/, with their files' SHA-256). So the search is
recursive; a folder whose name starts with '.' (an output still being written, or one left
by a killed process: `files.atomic_dir`) is not searched.

    table = list_runs("runs", scheme="ams")    # one row per run: scheme, video, the
                                               # parameters that differ, mIoU, Kbps, updates, date
    result = load_run(table["path"][0])        # a RunResult
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pandas as pd

from amslib.analysis.results import CONFIG_FILE, FRAMES_FILE, SUMMARY_FILE, UPDATES_FILE, RunResult, load_result
from amslib.core.config import RunConfig
from amslib.core.files import CHECKSUMS_FILE, damaged_files

RUN_FILES = (CONFIG_FILE, FRAMES_FILE, UPDATES_FILE)  # what load_result needs
NUMBER_COLUMNS = ("miou_window", "uplink_kbps", "downlink_kbps", "num_updates")
_OWN_COLUMNS = ("scheme", "video")  # columns of their own, never among the differing parameters


class DamagedRun(ValueError):
    """A run folder that cannot be read back: partial, changed since it was saved, or unreadable."""


def find_runs(root: str | Path) -> list[Path]:
    """The run folders under `root` (itself included), in path order: every folder holding
    one of config.json, frames.csv or updates.csv, sound or not. Folders named '.*' are
    not searched (unfinished outputs). FileNotFoundError when `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (give the folder your runs were saved under, "
                                "e.g. runs)" if not root.exists() else f"{root} is a file, not a folder of runs")
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        if any(name in files for name in RUN_FILES):
            found.append(Path(folder))
    return found


def check_run(folder: str | Path) -> tuple[RunConfig, dict]:
    """(config, summary) of a saved run, read without its tables when its summary.json is
    sound; DamagedRun (one line: what is wrong) when the folder is partial, a file recorded
    in checksums.json changed, or config.json does not describe a run."""
    folder = Path(folder)
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise DamagedRun(f"missing {', '.join(missing)} (a partial run folder)")
    if (folder / CHECKSUMS_FILE).is_file():
        changed = damaged_files(folder)
        if changed:
            raise DamagedRun(f"{', '.join(changed)} missing or changed since the run was saved ({CHECKSUMS_FILE})")
    meta = _read_json(folder / CONFIG_FILE)
    if not isinstance(meta.get("classes"), list):
        raise DamagedRun(f"{CONFIG_FILE} does not describe a run (no list of classes)")
    try:
        config = RunConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise DamagedRun(f"{CONFIG_FILE} does not describe a run ({type(err).__name__}: {err})") from None
    try:
        summary = _read_json(folder / SUMMARY_FILE)
    except DamagedRun:  # the tables are there: the summary is recomputed from them
        summary = _load(folder).summary()
    return config, summary


def load_run(path: str | Path) -> RunResult:
    """The run saved in folder `path` (by `save_result`: `run --out`, `demo`, a sweep, the
    live panel's cache), as a RunResult that `comparison_table`, `per_class_table`,
    `timeline_figure` and the widgets accept. FileNotFoundError for a missing folder or one
    that is not a run (naming the runs it holds, if any); DamagedRun for a damaged one."""
    folder = Path(path)
    runs = find_runs(folder)
    if folder not in runs:
        inside = ", ".join(str(p) for p in runs[:3]) + (", ..." if len(runs) > 3 else "")
        raise FileNotFoundError(f"{folder} is not a saved run (no {', '.join(RUN_FILES)})"
                                + (f"; it holds {len(runs)} run(s): {inside}" if runs else
                                   "; save one with python -m amslib run --out DIR"))
    try:
        check_run(folder)
    except DamagedRun as err:
        raise DamagedRun(f"{folder} cannot be loaded: {err}") from None
    return _load(folder)


def list_runs(root: str | Path = "runs", *, scheme: str | Iterable[str] | None = None,
              video: str | Iterable[str] | None = None, sort_by: str = "date", descending: bool = False,
              on_skip: Callable[[Path, str], None] | None = None) -> pd.DataFrame:
    """One row per run saved under `root` (searched recursively): `run` (its folder, relative
    to `root`), `scheme`, `video`, one column per config parameter whose value differs
    between the rows (flat names, as `--set` takes them), `miou_window` (%), `uplink_kbps`,
    `downlink_kbps`, `num_updates`, `date` (when its summary was written) and `path`.

    `scheme`, `video`: keep only runs with one of these values. `sort_by`: any column
    (ties in `run` order). A damaged or partial folder is left out and `on_skip(folder,
    reason)` called (default: a warning, one line). ValueError when no run is left."""
    rows, params = [], []
    for folder in find_runs(root):
        try:
            config, summary = check_run(folder)
        except DamagedRun as err:
            (on_skip or _warn_skip)(folder, str(err))
            continue
        rows.append(_row(folder, Path(root), config, summary))
        params.append(flat_parameters(config))
    if not rows:
        raise ValueError(f"{root} holds no saved runs (a run folder has {', '.join(RUN_FILES)}); "
                         "save one with python -m amslib run --out DIR, demo or sweep")
    table = pd.DataFrame(rows)
    wanted = {"scheme": _as_set(scheme), "video": _as_set(video)}
    keep = pd.Series(True, index=table.index)
    for column, values in wanted.items():
        keep &= table[column].isin(values) if values else True
    if not keep.any():
        raise ValueError(_no_match(table, root, wanted))
    table = _with_differences(table, [p for p, k in zip(params, keep) if k], keep)
    return _sorted(table, sort_by, descending)


def flat_parameters(config: RunConfig) -> dict:
    """Every parameter of `config` by its flat name (as `--set` and `with_overrides` take
    them: 'fraction', not 'adapt.fraction'); lists and dicts as JSON text."""
    out = {}
    for key, value in config.to_dict().items():
        out.update(value if isinstance(value, dict) else {key: value})
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in out.items()}


def runs_text(table: pd.DataFrame) -> str:
    """A `list_runs` table for a terminal: mIoU and Kbps to 0.1, dates to the minute, no
    path; text left-aligned, numbers right-aligned."""
    shown = table.drop(columns="path")
    cells = {c: [_fmt_value(v, decimals=1 if c in NUMBER_COLUMNS else None) for v in shown[c]] for c in shown}
    cells["date"] = list(shown["date"].dt.strftime("%Y-%m-%d %H:%M"))
    right = {c: pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c]) for c in cells}
    width = {c: max(len(c), *(len(v) for v in column)) for c, column in cells.items()}
    rows = [list(cells), *zip(*cells.values())]  # the header, then one row per run
    return "\n".join("  ".join(v.rjust(width[c]) if right[c] else v.ljust(width[c]) for c, v in zip(cells, row)).rstrip()
                     for row in rows)


# -- helpers ----------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DamagedRun(f"{path.name} is unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise DamagedRun(f"{path.name} holds a {type(data).__name__}, not a JSON object")
    return data


def _load(folder: Path) -> RunResult:
    try:
        return load_result(folder)
    except (OSError, KeyError, TypeError, ValueError) as err:  # pandas' parser errors are ValueErrors
        raise DamagedRun(f"its tables are unreadable ({type(err).__name__}: {err})") from None


def _row(folder: Path, root: Path, config: RunConfig, summary: dict) -> dict:
    written = folder / SUMMARY_FILE if (folder / SUMMARY_FILE).is_file() else folder / CONFIG_FILE
    return {"run": folder.relative_to(root).as_posix() if folder != root else ".",
            "scheme": config.scheme, "video": config.video,
            **{k: summary.get(k) for k in NUMBER_COLUMNS},
            "date": pd.Timestamp(datetime.fromtimestamp(written.stat().st_mtime)), "path": str(folder)}


def _as_set(values: str | Iterable[str] | None) -> set[str]:
    return set() if values is None else {values} if isinstance(values, str) else set(values)


def _no_match(table: pd.DataFrame, root, wanted: dict[str, set[str]]) -> str:
    """Why no run is left: the filters given, and the values the runs have."""
    asked = " and ".join(f"{column} {' or '.join(sorted(values))}" for column, values in wanted.items() if values)
    present = "; ".join(f"{column}: {', '.join(sorted(map(str, table[column].unique())))}"
                        for column, values in wanted.items() if values)
    return f"no run under {root} has {asked}; its runs have {present}"


def _with_differences(table: pd.DataFrame, params: list[dict], keep: pd.Series) -> pd.DataFrame:
    """The kept rows with a column per parameter that differs between them, after `video`."""
    table = table[keep].reset_index(drop=True)
    values = pd.DataFrame(params).drop(columns=list(_OWN_COLUMNS), errors="ignore")
    differ = [c for c in values.columns if values[c].astype(str).nunique() > 1]
    first = ["run", *_OWN_COLUMNS]
    return pd.concat([table[first], values[differ], table.drop(columns=first)], axis=1)


def _sorted(table: pd.DataFrame, sort_by: str, descending: bool) -> pd.DataFrame:
    if sort_by not in table.columns:
        raise ValueError(f"cannot sort by '{sort_by}': not a column (a parameter is one only where the runs listed "
                         f"differ in it); choose one of: {', '.join(c for c in table.columns if c != 'path')}")
    table = table.sort_values("run", kind="stable")
    try:
        table = table.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last")
    except TypeError:  # a parameter of mixed types (a number in some runs, text in others)
        table = table.sort_values(sort_by, ascending=not descending, kind="stable", key=lambda c: c.astype(str))
    return table.reset_index(drop=True)


def _fmt_value(value, *, decimals: int | None = None) -> str:
    """A cell: '-' for a missing value, a float to `decimals` places (None: as short as exact)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"
    return str(value)


def _warn_skip(folder: Path, reason: str) -> None:
    warnings.warn(f"skipped {folder}: {reason}", stacklevel=3)
