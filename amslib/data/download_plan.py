"""What to download and how it is cut (pure): a `Request` (source, name, interval), `Options`
(retries, piece length), `Progress` reports, the `Clip` a download gives, and the plan of
pieces cut half a frame between frames (`plan_pieces`), with ffmpeg's stream facts parsed.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from amslib.data.download_errors import DownloadError
from amslib.data.manifest import get_entry


SIDECAR_FORMAT = 1
DEFAULT_MAX_HEIGHT = 480
DEFAULT_PIECE_S = 60.0
_EDGE = 1e-6  # frames closer than this (in frames) to a boundary count as on it
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """What to fetch. `url`: a YouTube page (or any site yt-dlp knows) or a direct file;
    `name`: the file stem in the output folder; [start_s, end_s): a section, or both None
    for the whole file; `max_height`: the tallest video format to choose (None: best)."""

    url: str
    name: str
    start_s: float | None = None
    end_s: float | None = None
    max_height: int | None = DEFAULT_MAX_HEIGHT

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise DownloadError(f"'{self.name}' cannot be a file name; use letters, digits, '_', '-', '.'")
        if (self.start_s is None) != (self.end_s is None):
            raise DownloadError("give both --start and --end, or neither for the whole video")
        if self.start_s is not None and not 0 <= self.start_s < self.end_s:
            raise DownloadError(f"interval {self.start_s}-{self.end_s} s is empty or negative; "
                                "give 0 <= start < end in seconds")
        if self.max_height is not None and self.max_height < 16:
            raise DownloadError(f"max height {self.max_height} is too small; give 16 or more pixels")

    @property
    def is_section(self) -> bool:
        return self.start_s is not None

    def key(self) -> dict:
        """The fields that determine the downloaded content (the cache key)."""
        return {"source": self.url, "start_s": self.start_s, "end_s": self.end_s,
                "max_height": self.max_height}


@dataclass(frozen=True)
class Options:
    """How to fetch (not what): retries of transient network errors, with waits doubling
    from `retry_wait_s`; the length of a resumable piece; the socket timeout."""

    retries: int = 3
    retry_wait_s: float = 2.0
    piece_s: float = DEFAULT_PIECE_S
    socket_timeout_s: float = 20.0


@dataclass(frozen=True)
class Progress:
    """A progress report: `done` of `total` `unit`s ('s' of video, or 'B'). `reused`:
    pieces an interrupted earlier call had already finished."""

    stage: str
    done: float
    total: float | None
    unit: str
    reused: int = 0


@dataclass(frozen=True)
class Clip:
    """A downloaded video and the facts its sidecar records. `cut`: 'exact' (a section
    cut at frame boundaries), 'whole' (the file as served) or 'local' (imported)."""

    path: Path
    source: str
    start_s: float | None
    end_s: float | None
    max_height: int | None
    sha256: str
    size_bytes: int
    fps: float
    frames: int
    duration_s: float
    width: int
    height: int
    cut: str
    cached: bool = False

    def sidecar(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("path", "cached")}
        return {"format": SIDECAR_FORMAT, "file": self.path.name, **data,
                "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def name_for_url(url: str) -> str:
    """A file stem for a URL: YouTube's video id, else the last path component's stem."""
    parsed = urlparse(url)
    video_id = parse_qs(parsed.query).get("v", [""])[0]
    if not video_id and parsed.netloc.endswith("youtu.be"):
        video_id = parsed.path.strip("/")
    stem = video_id or Path(parsed.path).stem or parsed.netloc
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "video"


def request_for(spec: str, *, start_s: float | None = None, end_s: float | None = None,
                max_height: int | None = DEFAULT_MAX_HEIGHT, name: str | None = None,
                manifest: str | Path | None = None) -> Request:
    """A Request for a manifest `video_id` or a URL. A manifest row's interval applies unless
    start_s/end_s are given; `manual` rows raise DownloadError saying what to do by hand."""
    if re.match(r"https?://", spec):
        return Request(spec, name or name_for_url(spec), start_s, end_s, max_height)
    entry = get_entry(spec, manifest)
    if entry.access == "manual":
        where = f" from {entry.url}" if entry.url else ""
        raise DownloadError(
            f"'{spec}' cannot be downloaded automatically ({entry.notes.split('.')[0].strip()}): get it "
            f"by hand{where}, then run `python -m amslib download {spec} --from PATH`")
    if start_s is None and end_s is None:
        start_s, end_s = entry.start_s, entry.end_s
    return Request(entry.url, name or entry.video_id, start_s, end_s, max_height)


# --------------------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class Piece:
    """A part of a section: source times [start_s, end_s) hold exactly `frames` frames;
    both ends sit half a frame away from the nearest frame."""

    index: int
    start_s: float
    end_s: float
    frames: int


def frame_range(start_s: float, end_s: float, fps: float) -> tuple[int, int]:
    """Source frame indices [first, stop) whose times j / fps lie in [start_s, end_s).

    Assumes a constant frame rate from time 0 (true of YouTube's streams)."""
    return math.ceil(start_s * fps - _EDGE), math.ceil(end_s * fps - _EDGE)


def plan_pieces(start_s: float, end_s: float, fps: float, piece_s: float) -> tuple[Piece, ...]:
    """Split [start_s, end_s) into pieces of about piece_s seconds, cut between frames."""
    first, stop = frame_range(start_s, end_s, fps)
    if stop <= first:
        raise DownloadError(f"interval {start_s}-{end_s} s holds no frame at {fps:g} fps; widen it")
    step = stop - first if math.isinf(piece_s) else max(1, round(piece_s * fps))
    return tuple(
        Piece(k, max(0.0, (j - 0.5) / fps), (j + min(step, stop - j) - 0.5) / fps, min(step, stop - j))
        for k, j in enumerate(range(first, stop, step)))


def snap_fps(fps: float) -> float:
    """ffmpeg prints rates rounded (29.97); use the exact NTSC rate when it is one."""
    for exact in (24000 / 1001, 30000 / 1001, 60000 / 1001):
        if abs(fps - exact) < 0.006:
            return exact
    return fps


@dataclass(frozen=True)
class StreamInfo:
    """Video stream facts parsed from ffmpeg's report on a file or URL."""

    fps: float
    width: int
    height: int
    duration_s: float | None


def parse_ffmpeg_info(text: str) -> StreamInfo:
    """Parse `ffmpeg -i` output (stderr) -> StreamInfo; DownloadError if it has no video."""
    video = re.search(r"Stream #\S+.*?: Video: .*", text)
    if not video:
        raise DownloadError("the download holds no video stream; is the URL a video?")
    size = re.search(r"\b(\d{2,5})x(\d{2,5})\b", video.group(0))
    rate = re.search(r"([\d.]+) fps", video.group(0)) or re.search(r"([\d.]+) tbr", video.group(0))
    if not (size and rate):
        raise DownloadError(f"cannot read the frame size/rate of the video ({video.group(0)[:80]})")
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    seconds = None if not duration else (
        int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)))
    return StreamInfo(snap_fps(float(rate.group(1))), int(size.group(1)), int(size.group(2)), seconds)
