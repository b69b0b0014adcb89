"""Tests for amslib.data.manifest: the shipped data_manifest.csv and the validation of bad rows."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from amslib.core.labels import CITYSCAPES19, VOC21
from amslib.data.manifest import (
    DEFAULT_MANIFEST_PATH,
    REQUIRED_COLUMNS,
    ManifestError,
    ManifestNotFoundError,
    UnknownVideoError,
    VideoEntry,
    get_entry,
    load_manifest,
    manifest_table,
    parse_manifest,
)

# Seed README, "Outdoor Scenes": (YouTube watch id, interval as written), converted by hand.
SEED_INTERVALS_S = {
    "outdoor_interview": ("zkIADOEhk5I", 20, 445),          # 00:20 - 07:25
    "outdoor_dance": ("2mtaoDYcisY", 6, 920),               # 00:06 - 15:20
    "outdoor_street_comedian": ("1ESzHVhAKBI", 0, 835),     # 00:00 - 13:55
    "outdoor_paris": ("09oFgM5IHSI", 757, 1671),            # 12:37 - 27:51
    "outdoor_nyc": ("H_zosklgz18", 6040, 6943),             # 100:40 - 115:43
    "outdoor_la": ("Cw0d-nqSNE8", 504, 1418),               # 08:24 - 23:38
    "outdoor_running": ("S9xzNyi_5TI", 981, 1796),          # 16:21 - 29:56
}
SEED_DURATIONS_S = {
    "outdoor_interview": 425, "outdoor_dance": 914, "outdoor_street_comedian": 835,
    "outdoor_paris": 914, "outdoor_nyc": 903, "outdoor_la": 914, "outdoor_running": 815,
}
EXPECTED_IDS = [
    "outdoor_interview", "outdoor_dance", "outdoor_street_comedian", "outdoor_paris",
    "outdoor_nyc", "outdoor_la", "outdoor_running", "cityscapes_frankfurt",
    "a2d2_gaimersheim", "a2d2_ingolstadt", "a2d2_munich", "lvs",
]


# --------------------------------------------------------------------------- real manifest


@pytest.fixture(scope="module")
def manifest() -> dict[str, VideoEntry]:
    return load_manifest()


def test_real_manifest_has_the_twelve_seed_videos(manifest):
    assert list(manifest) == EXPECTED_IDS


def test_la_clip_is_the_one_certain_mapping(manifest):
    la = manifest["outdoor_la"]
    assert la.classes == ("road", "sidewalk", "building", "vegetation", "sky", "person", "car")
    assert (la.start_s, la.end_s, la.duration_s) == (504, 1418, 914)
    assert la.class_ids == (0, 1, 2, 8, 10, 11, 13)
    assert la.access == "youtube" and la.camera == "dashcam"


@pytest.mark.parametrize("video_id", sorted(SEED_INTERVALS_S))
def test_youtube_rows_match_seed_readme(manifest, video_id):
    entry = manifest[video_id]
    watch_id, start_s, end_s = SEED_INTERVALS_S[video_id]
    assert entry.url == f"https://www.youtube.com/watch?v={watch_id}"
    assert (entry.start_s, entry.end_s) == (start_s, end_s)
    assert entry.duration_s == SEED_DURATIONS_S[video_id]


def test_youtube_rows_are_exactly_the_outdoor_scenes(manifest):
    youtube = {k for k, e in manifest.items() if e.access == "youtube"}
    assert youtube == set(SEED_INTERVALS_S)


def test_whole_file_datasets(manifest):
    for video_id in EXPECTED_IDS[7:]:
        entry = manifest[video_id]
        assert entry.start_s is None and entry.end_s is None and entry.duration_s is None
    assert manifest["cityscapes_frankfurt"].access == "manual"
    assert manifest["lvs"].access == "manual" and manifest["lvs"].url is None
    for route in ("gaimersheim", "ingolstadt", "munich"):
        entry = manifest[f"a2d2_{route}"]
        assert entry.access == "direct" and entry.url.endswith("_camera_frontcenter.tar")
        assert entry.classes == ("road", "sidewalk", "building", "sky", "person", "car")


def test_label_sets_and_class_counts(manifest):
    for entry in manifest.values():
        label_set = VOC21 if entry.video_id == "lvs" else CITYSCAPES19
        assert entry.label_set == label_set.name
        assert 5 <= len(entry.classes) <= 7
        assert entry.notes, f"{entry.video_id} should say where its mapping comes from"


def test_manifest_table_is_one_row_per_video():
    table = manifest_table()
    assert list(table["video_id"]) == EXPECTED_IDS
    assert table.loc[table.video_id == "outdoor_nyc", "duration_s"].item() == 903
    assert math.isnan(table.loc[table.video_id == "lvs", "start_s"].item())


def test_get_entry_and_unknown_id_lists_known_ids():
    assert get_entry("outdoor_paris").title == "Walking in Paris"
    with pytest.raises(UnknownVideoError) as info:
        get_entry("outdoor_mars")
    message = str(info.value)
    assert message.startswith("unknown video id 'outdoor_mars'; known ids: ")
    assert all(video_id in message for video_id in EXPECTED_IDS)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ManifestError)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no video manifest") as info:
        load_manifest(tmp_path / "absent.csv")
    assert isinstance(info.value, ManifestNotFoundError)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(_csv([_row(access="ftp")]))
    with pytest.raises(ManifestError, match="bad.csv"):
        load_manifest(path)


# --------------------------------------------------------------------------- malformed rows


def _row(**changes: str) -> dict[str, str]:
    """A valid YouTube row, with `changes` applied."""
    row = {
        "video_id": "clip_a", "dataset": "outdoor_scenes", "title": "A clip, with comma",
        "url": "https://www.youtube.com/watch?v=abc", "start_s": "10", "end_s": "70",
        "camera": "phone", "classes": "road;person;car", "label_set": "cityscapes19",
        "access": "youtube", "notes": "",
    }
    row.update(changes)
    return row


def _csv(rows: list[dict[str, str]]) -> str:
    return pd.DataFrame(rows).to_csv(index=False)


def test_valid_rows_parse_from_text_and_dataframe():
    rows = [_row(), _row(video_id="clip_b", url="", start_s="", end_s="", access="manual",
                         classes="person;dog", label_set="voc21")]
    from_text = parse_manifest(_csv(rows))
    frame = pd.DataFrame(rows).replace("", None)  # missing cells as None/NaN
    before = frame.copy()
    from_frame = parse_manifest(frame)
    assert from_text == from_frame
    pd.testing.assert_frame_equal(frame, before)  # input not mutated
    assert from_text["clip_a"].duration_s == 60
    assert from_text["clip_a"].title == "A clip, with comma"
    assert from_text["clip_b"].url is None and from_text["clip_b"].classes == ("person", "dog")


# (rows, substrings the message must contain). Row 2 is the bad one unless stated.
MALFORMED = {
    "bad access": ([_row(), _row(video_id="b", access="torrent")],
                   ["row 2", "'b'", "'access'", "torrent", "youtube, direct, manual"]),
    "unknown class": ([_row(), _row(video_id="b", classes="road;puddle")],
                      ["row 2", "'b'", "'classes'", "puddle"]),
    "class of the other label set": ([_row(classes="road;dog")],
                                     ["row 1", "'clip_a'", "'classes'", "dog"]),
    "too many classes": ([_row(classes="road;sidewalk;building;wall;fence;pole;sky;car")],
                         ["row 1", "'classes'", "too many"]),
    "empty classes": ([_row(classes="")], ["row 1", "'classes'", "is empty"]),
    "repeated class": ([_row(classes="road;road")], ["row 1", "'classes'", "repeated"]),
    "end before start": ([_row(), _row(video_id="b", start_s="70", end_s="10")],
                         ["row 2", "'b'", "'end_s'", "not after start"]),
    "end equals start": ([_row(start_s="10", end_s="10")], ["row 1", "'end_s'"]),
    "negative start": ([_row(start_s="-5")], ["row 1", "'start_s'", "-5"]),
    "non-numeric start": ([_row(), _row(video_id="b", start_s="0:20")],
                          ["row 2", "'b'", "'start_s'", "0:20"]),
    "only one time": ([_row(access="direct", end_s="")], ["row 1", "'end_s'", "both"]),
    "youtube without times": ([_row(start_s="", end_s="")],
                              ["row 1", "'start_s'", "interval"]),
    "youtube without url": ([_row(url="")], ["row 1", "'url'", "need a url"]),
    "direct without url": ([_row(url="", access="direct", start_s="", end_s="")],
                           ["row 1", "'url'", "'manual'"]),
    "url not http": ([_row(url="ftp://host/v.mp4")], ["row 1", "'url'", "http"]),
    "duplicate id": ([_row(), _row(title="again")],
                     ["row 2", "'clip_a'", "'video_id'", "row 1", "unique"]),
    "empty id": ([_row(), _row(video_id="")], ["row 2", "'video_id'", "is empty"]),
    "id not a slug": ([_row(video_id="Clip A")], ["row 1", "'video_id'", "Clip A"]),
    "unknown label set": ([_row(label_set="ade20k")], ["row 1", "'label_set'", "ade20k"]),
    "unknown camera": ([_row(camera="satellite")], ["row 1", "'camera'", "satellite"]),
    "empty title": ([_row(title="")], ["row 1", "'title'", "empty"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_rows_name_row_and_column(case):
    rows, expected = MALFORMED[case]
    with pytest.raises(ManifestError) as info:
        parse_manifest(_csv(rows))
    message = str(info.value)
    for text in expected:
        assert text in message, f"{text!r} missing from: {message}"


@pytest.mark.parametrize("column", ["camera", "classes", "video_id"])
def test_missing_column_is_named(column):
    table = pd.DataFrame([_row()]).drop(columns=[column])
    with pytest.raises(ManifestError, match=f"missing required column.*'{column}'"):
        parse_manifest(table)


def test_extra_columns_are_allowed():
    entries = parse_manifest(_csv([{**_row(), "fps": "30"}]))
    assert list(entries) == ["clip_a"]


@pytest.mark.parametrize("text", ["", 'video_id,dataset\n"unclosed,x\n'])
def test_unreadable_text_raises_manifest_error(text):
    with pytest.raises(ManifestError):
        parse_manifest(text)


def test_required_columns_are_the_documented_order():
    first_line = DEFAULT_MANIFEST_PATH.read_text(encoding="utf-8").splitlines()[0]
    assert tuple(first_line.split(",")[: len(REQUIRED_COLUMNS)]) == REQUIRED_COLUMNS
