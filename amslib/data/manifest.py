"""The video manifest: which videos the workbench knows, where they come from, what to score.

Data facts live in data (STYLE.md, principle 9): `data_manifest.csv` at the repository root
has one row per video (SPEC.md, "Datasets"), so no code keys classes or lengths by magic
experiment ids as the original did. This module only reads and validates that table.

    entries = load_manifest()              # {video_id: VideoEntry}
    get_entry("outdoor_la").classes        # ('road', 'sidewalk', ..., 'car')
    manifest_table()                       # the same, as a pandas DataFrame

`parse_manifest` is the pure part (text or DataFrame in, entries out); `load_manifest` adds
the file I/O.
"""
from __future__ import annotations

import dataclasses
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from amslib.core.labels import get_label_set

DEFAULT_MANIFEST_PATH = Path(__file__).resolve().parents[2] / "data_manifest.csv"

REQUIRED_COLUMNS: tuple[str, ...] = (
    "video_id", "dataset", "title", "url", "start_s", "end_s", "camera", "classes",
    "label_set", "access", "notes",
)
ACCESS_MODES: tuple[str, ...] = ("youtube", "direct", "manual")
# The seed README's four camera types, plus "mixed" for collections such as LVS.
CAMERA_TYPES: tuple[str, ...] = ("stationary", "phone", "headcam", "dashcam", "mixed")
MAX_CLASSES = 7  # SPEC.md: each video has 5-7 important classes; fewer are allowed.
CLASS_SEPARATOR = ";"
_VIDEO_ID = re.compile(r"[a-z0-9_]+")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the row, the column and the fix."""


class UnknownVideoError(ManifestError, KeyError):
    """`get_entry` was asked for a video id the manifest lacks (also a KeyError)."""

    def __str__(self) -> str:
        # KeyError would quote the message; show it as written.
        return str(self.args[0]) if self.args else ""


class ManifestNotFoundError(FileNotFoundError):
    """No manifest file where one was expected."""


@dataclass(frozen=True)
class VideoEntry:
    """One row of the manifest, typed.

    `start_s`/`end_s` bound the clip inside the source video (YouTube rows); both are None
    for whole-file datasets. `classes` are the video's important classes, names from
    the label set `label_set`; loss and mIoU count only pixels labelled with one of them.
    """

    video_id: str
    dataset: str
    title: str
    url: str | None
    start_s: float | None
    end_s: float | None
    camera: str
    classes: tuple[str, ...]
    label_set: str
    access: str
    notes: str

    @property
    def duration_s(self) -> float | None:
        """Clip length in seconds, or None when the whole file is used."""
        if self.start_s is None or self.end_s is None:
            return None
        return self.end_s - self.start_s

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Ids of `classes` in the label set, in the same order."""
        return get_label_set(self.label_set).ids(self.classes)


# --------------------------------------------------------------------------- parsing (pure)


def _row_error(row: int, video_id: str, column: str, problem: str, fix: str) -> ManifestError:
    """A ManifestError that says where (data row, video id, column), what, and what to do."""
    where = f"data row {row}" + (f" (video_id '{video_id}')" if video_id else "")
    return ManifestError(f"manifest {where}, column '{column}': {problem}; {fix}")


def _read_text(text: str) -> pd.DataFrame:
    """CSV text -> DataFrame of strings (empty cells stay '')."""
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ManifestError(
            "manifest is empty; it needs a header row with the columns "
            f"{', '.join(REQUIRED_COLUMNS)} and one row per video"
        ) from None
    except pd.errors.ParserError as err:
        raise ManifestError(
            f"manifest is not valid CSV ({err}); quote fields that contain commas"
        ) from None


def _cell_text(value: object) -> str:
    """A DataFrame cell as stripped text; missing values (None, NaN) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _check_columns(columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ManifestError(
            f"manifest is missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"add them to the header row (required: {', '.join(REQUIRED_COLUMNS)})"
        )


def _parse_seconds(text: str, row: int, video_id: str, column: str) -> float | None:
    """'' -> None; otherwise a finite, non-negative number of seconds."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise _row_error(
            row, video_id, column, f"'{text}' is not a non-negative number of seconds",
            "write seconds as a plain number (e.g. 504 for 08:24) or leave it empty",
        )
    return value


def _parse_interval(
    cells: dict[str, str], row: int, video_id: str
) -> tuple[float | None, float | None]:
    """start_s, end_s: both empty, or both numbers with start < end."""
    start = _parse_seconds(cells["start_s"], row, video_id, "start_s")
    end = _parse_seconds(cells["end_s"], row, video_id, "end_s")
    if (start is None) != (end is None):
        column = "end_s" if end is None else "start_s"
        raise _row_error(row, video_id, column, "only one end of the interval is given",
                         "fill both start_s and end_s, or leave both empty for a whole file")
    if start is not None and end is not None and not start < end:
        raise _row_error(row, video_id, "end_s", f"end {end:g} s is not after start {start:g} s",
                         "check the interval; end_s must be greater than start_s")
    return start, end


def _parse_classes(text: str, label_set: str, row: int, video_id: str) -> tuple[str, ...]:
    """'road;car' -> ('road', 'car'), checked against the label set."""
    names = tuple(n.strip() for n in text.split(CLASS_SEPARATOR)) if text else ()
    fix = f"list 1-{MAX_CLASSES} class names of '{label_set}' separated by '{CLASS_SEPARATOR}'"
    if not names:
        raise _row_error(row, video_id, "classes", "is empty", fix)
    if "" in names:
        raise _row_error(row, video_id, "classes", f"empty class name in '{text}'", fix)
    if len(names) > MAX_CLASSES:
        raise _row_error(row, video_id, "classes", f"{len(names)} names is too many", fix)
    if len(set(names)) != len(names):
        raise _row_error(row, video_id, "classes", f"a class is repeated in '{text}'", fix)
    try:
        get_label_set(label_set).ids(names)
    except ValueError as err:
        raise _row_error(row, video_id, "classes", str(err), fix) from None
    return names


def _check_choice(value: str, choices: tuple[str, ...], row: int, video_id: str,
                  column: str) -> str:
    if value not in choices:
        raise _row_error(row, video_id, column, f"'{value}' is not allowed",
                         f"use one of: {', '.join(choices)}")
    return value


def _check_url(url: str, access: str, row: int, video_id: str) -> str | None:
    """URL required for youtube/direct rows; when present it must be http(s)."""
    if url == "":
        if access in ("youtube", "direct"):
            raise _row_error(row, video_id, "url", f"'{access}' rows need a url",
                             "add the download url, or set access to 'manual'")
        return None
    if not url.startswith(("http://", "https://")):
        raise _row_error(row, video_id, "url", f"'{url}' is not an http(s) url",
                         "give a url starting with http:// or https://, or leave it empty")
    return url


def _check_label_set(name: str, row: int, video_id: str) -> str:
    try:
        get_label_set(name)
    except ValueError as err:
        raise _row_error(row, video_id, "label_set", str(err),
                         "set label_set to the labels the teacher produces") from None
    return name


def _check_video_id(video_id: str, row: int) -> str:
    if not _VIDEO_ID.fullmatch(video_id):
        problem = "is empty" if not video_id else f"'{video_id}' has characters outside a-z0-9_"
        raise _row_error(row, "", "video_id", problem,
                         "give a short slug of lower-case letters, digits and '_'")
    return video_id


def _check_filled(value: str, row: int, video_id: str, column: str) -> str:
    if not value:
        raise _row_error(row, video_id, column, "is empty", f"fill in the {column}")
    return value


def parse_row(cells: dict[str, str], row: int) -> VideoEntry:
    """One manifest row (column -> stripped text) -> VideoEntry; `row` is 1-based, for errors."""
    video_id = _check_video_id(cells["video_id"], row)
    access = _check_choice(cells["access"], ACCESS_MODES, row, video_id, "access")
    label_set = _check_label_set(cells["label_set"], row, video_id)
    start_s, end_s = _parse_interval(cells, row, video_id)
    if access == "youtube" and start_s is None:
        raise _row_error(row, video_id, "start_s", "youtube rows need a clip interval",
                         "fill start_s and end_s in seconds (mm:ss -> 60*mm + ss)")
    return VideoEntry(
        video_id=video_id,
        dataset=_check_filled(cells["dataset"], row, video_id, "dataset"),
        title=_check_filled(cells["title"], row, video_id, "title"),
        url=_check_url(cells["url"], access, row, video_id),
        start_s=start_s,
        end_s=end_s,
        camera=_check_choice(cells["camera"], CAMERA_TYPES, row, video_id, "camera"),
        classes=_parse_classes(cells["classes"], label_set, row, video_id),
        label_set=label_set,
        access=access,
        notes=cells["notes"],
    )


def parse_manifest(source: str | pd.DataFrame) -> dict[str, VideoEntry]:
    """Manifest CSV text, or a DataFrame of its rows -> {video_id: VideoEntry}, in row order.

    Raises ManifestError naming the first bad row (1-based data row and video_id) and column.
    Extra columns are allowed and ignored. The input is not modified.
    """
    table = _read_text(source) if isinstance(source, str) else source
    _check_columns([str(c) for c in table.columns])
    entries: dict[str, VideoEntry] = {}
    first_row: dict[str, int] = {}
    for row, record in enumerate(table.to_dict("records"), start=1):
        cells = {c: _cell_text(record[c]) for c in REQUIRED_COLUMNS}
        entry = parse_row(cells, row)
        if entry.video_id in entries:
            raise _row_error(row, entry.video_id, "video_id",
                             f"duplicates the id of row {first_row[entry.video_id]}",
                             "give each video a unique video_id")
        entries[entry.video_id] = entry
        first_row[entry.video_id] = row
    return entries


# --------------------------------------------------------------------------- file I/O


def _resolve(path: str | Path | None) -> Path:
    resolved = DEFAULT_MANIFEST_PATH if path is None else Path(path)
    if not resolved.is_file():
        raise ManifestNotFoundError(
            f"no video manifest at {resolved}; pass path= to a data_manifest.csv "
            "(columns: " + ", ".join(REQUIRED_COLUMNS) + ") or restore the repository's copy"
        )
    return resolved


def load_manifest(path: str | Path | None = None) -> dict[str, VideoEntry]:
    """Read and validate the manifest -> {video_id: VideoEntry}.

    `path` defaults to `data_manifest.csv` at the repository root. Raises
    ManifestNotFoundError if the file is absent and ManifestError (with the file name) if a
    row is invalid.
    """
    resolved = _resolve(path)
    try:
        return parse_manifest(resolved.read_text(encoding="utf-8"))
    except ManifestError as err:
        raise ManifestError(f"{resolved}: {err}") from None


def manifest_table(path: str | Path | None = None) -> pd.DataFrame:
    """The validated manifest as a DataFrame: one row per video, VideoEntry's fields as
    columns (`classes` as tuples, missing times as NaN) plus `duration_s`."""
    rows = [
        {**dataclasses.asdict(e), "duration_s": e.duration_s}
        for e in load_manifest(path).values()
    ]
    table = pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(VideoEntry)]
                         + ["duration_s"])
    return table.astype({"start_s": float, "end_s": float, "duration_s": float})


def get_entry(video_id: str, path: str | Path | None = None) -> VideoEntry:
    """The manifest entry for `video_id`; UnknownVideoError (a ManifestError and KeyError)
    listing the known ids if there is none."""
    entries = load_manifest(path)
    try:
        return entries[video_id]
    except KeyError:
        raise UnknownVideoError(
            f"unknown video id '{video_id}'; known ids: {', '.join(entries)}"
        ) from None
