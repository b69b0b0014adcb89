"""Downloads: manifest videos and URLs, cut at exactly the right frames, resumable, cached.

    fetch(request_for("outdoor_la"))              # YouTube section 504-1418 s of the manifest row
    fetch(Request(url, "clip", 10, 70), out_dir=...)

yt-dlp (through its Python API) fetches; ffmpeg is the one `imageio-ffmpeg` ships, so no
system ffmpeg is needed. A *section* [start_s, end_s) is fetched in pieces of about
`piece_s` seconds. yt-dlp's section download cuts at keyframes unless told otherwise, so
each piece is fetched with `force_keyframes_at_cuts` (ffmpeg seeks accurately and re-encodes
to H.264) and its boundaries sit half a frame between two frames (no frame is on an edge).
Every piece's frame count is checked against the plan; a piece that fails is fetched again
once (re-cut), then the download fails with a message. The pieces are joined without
re-encoding and the clip is checked again (frame count and duration).

Layout of the output folder (by default where `amslib.core.files.videos_dir()` looks):
    <name>.mp4        the clip
    <name>.json       its sidecar: source, interval, sha256, fps, frames, ...
    .<name>.parts/    work in progress; finished pieces survive an interruption (resume)

A second call with the same request finds <name>.mp4 and its sidecar, checks the sha256,
and returns at once (idempotent cache). Whole files (no interval, `direct` rows) use
yt-dlp's own resumable HTTP download (`.part` + Range requests).
"""
from __future__ import annotations

import contextvars
import copy
import errno
import json
import math
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import imageio_ffmpeg

from amslib.core.files import sha256_of, videos_dir, write_json
from amslib.data.manifest import get_entry

SIDECAR_FORMAT = 1
DEFAULT_MAX_HEIGHT = 480
DEFAULT_PIECE_S = 60.0
_EDGE = 1e-6  # frames closer than this (in frames) to a boundary count as on it
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# H.264 at near-transparent quality; no audio (the workbench never uses it).
_ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-an")


class DownloadError(ValueError):
    """A download that cannot go on; the message says why and what to do, on one line.
    `kind`: 'disk', 'unavailable', 'network', 'expired', 'rate_limited', 'request' (the request
    itself is wrong, e.g. an interval past the video's end) or 'other'; the
    transient ones (TRANSIENT) keep a resumable download's finished pieces."""

    def __init__(self, message: str, *, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


TRANSIENT = ("network", "expired", "rate_limited")  # worth retrying; resume state is kept


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


# --------------------------------------------------------------------------- errors (pure)

_UNAVAILABLE = ("video unavailable", "private video", "is private", "been removed", "terminated",
                "http error 404", "http error 410", "http error 403", "members-only",
                "this video is not available", "sign in to confirm", "unsupported url", "copyright")
_NETWORK = ("failed to resolve", "name or service not known", "temporary failure in name resolution",
            "connection refused", "timed out", "network is unreachable", "unable to download",
            "connection reset", "remote end closed", "incompleteread", "errno 101", "errno 111",
            "errno 110", "getaddrinfo", "unable to connect", "http error 5", "server returned 5",
            "error opening input", "input/output error", "end of file", "connection aborted",
            "content too short", "did not get any data", "more expected", "incomplete read")


def _causes(err: BaseException) -> list[BaseException]:
    """`err`, the exception yt-dlp wrapped in it (`exc_info`), and their causes and contexts."""
    seen, queue = [], [err]
    while queue:
        e = queue.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        wrapped = getattr(e, "exc_info", None)
        queue += [wrapped[1] if isinstance(wrapped, tuple) and len(wrapped) > 1 else None, e.__cause__, e.__context__]
    return seen


def _http_status(err: BaseException) -> int | None:
    for attr in ("status", "code"):
        value = getattr(err, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def classify_error(err: BaseException, *, context: str = "", during_fetch: bool = False) -> str:
    """The kind of a download failure (see DownloadError.kind), by the exception's type and
    HTTP status first, its text only as a fallback (ffmpeg's messages have nothing else).
    `during_fetch`: the failure came after the media download began, where a 403 is most often
    an expired stream URL (transient), not a removed video."""
    for e in _causes(err):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return "disk"
        status = _http_status(e)
        if status == 429:
            return "rate_limited"
        if status is not None and (status >= 500 or status == 408):
            return "network"
        if status in (401, 403):
            return "expired" if during_fetch else "unavailable"
        if status in (404, 410, 451):
            return "unavailable"
        name = type(e).__name__
        if name in ("GeoRestrictedError", "UnavailableVideoError") or (name == "ExtractorError" and getattr(e, "expected", False)):
            return "unavailable"
        if name in ("TransportError", "IncompleteRead", "ContentTooShortError", "SSLError", "ProxyError") or isinstance(
                e, (ConnectionError, TimeoutError)):
            return "network"
    kind = classify(f"{err} {context}")
    return "expired" if kind == "unavailable" and during_fetch and "403" in str(err) else kind


def classify(message: str) -> str:
    """'disk', 'unavailable', 'network', 'rate_limited' or 'other' for an error message of
    yt-dlp/ffmpeg (the text rules; `classify_error` looks at the exception first)."""
    text = message.lower()
    if "http error 429" in text or "too many requests" in text:
        return "rate_limited"
    if "no space left" in text or "errno 28" in text:
        return "disk"
    if any(p in text for p in _UNAVAILABLE):
        return "unavailable"
    if any(p in text for p in _NETWORK):
        return "network"
    return "other"


def short_message(message: str) -> str:
    """The last meaningful line of a tool's message, without 'ERROR:' and colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(message).splitlines()]
    lines = [line for line in lines if line]
    text = lines[-1] if lines else "unknown error"
    return re.sub(r"^(ERROR|error):\s*", "", text)[:300]


def explain(message: str, *, source: str, out_dir: Path, resumable: bool, kind: str | None = None) -> DownloadError:
    """A one-line DownloadError for a failure of yt-dlp or ffmpeg fetching `source` (`kind`
    from `classify_error`; else from the message's text)."""
    kind, detail = kind or classify(message), short_message(message)
    again = " (what was fetched is kept: it resumes)" if resumable else ""
    if kind == "disk":
        return DownloadError(f"disk full while writing to {out_dir} ({detail}); free some space "
                             "or choose another --out, then run the same command again", kind=kind)
    if kind == "unavailable":
        return DownloadError(f"{source} is unavailable: removed, private, region- or age-restricted, "
                             f"or a wrong URL ({detail}); check the URL, or get the video by hand "
                             "and pass it with --from FILE", kind=kind)
    if kind == "rate_limited":
        return DownloadError(f"the server refused more requests for now (HTTP 429, {detail}); wait a few "
                             f"minutes, then run the same command again{again}", kind=kind)
    if kind == "expired":
        return DownloadError(f"the server refused the media stream part-way (HTTP 403: most often an expired "
                             f"stream address, {detail}); run the same command again{again}", kind=kind)
    if kind == "network":
        host = urlparse(source).netloc or source
        return DownloadError(f"no network: cannot reach {host} ({detail}); check the connection or "
                             f"proxy, then run the same command again{again}", kind=kind)
    return DownloadError(f"download of {source} failed: {detail}", kind=kind)


# --------------------------------------------------------------------------- ffmpeg helpers


def ffmpeg_exe() -> str:
    """The ffmpeg of imageio-ffmpeg (the only ffmpeg the workbench needs)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def _run_ffmpeg(args: list[str], *, what: str) -> str:
    """Run ffmpeg; returns its stderr; raises OSError (with errno 28 kept) or DownloadError."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True,
                          text=True, errors="replace")
    if proc.returncode != 0:
        if "No space left" in proc.stderr:
            raise OSError(errno.ENOSPC, f"No space left on device ({what})")
        raise DownloadError(f"ffmpeg failed while {what}: {short_message(proc.stderr)}")
    return proc.stderr


def probe(source: str | Path, *, headers: dict | None = None) -> StreamInfo:
    """Frame rate, size and duration of a local file or a URL (reads only the headers)."""
    args = ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())] if headers else []
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args, "-i", str(source)],
                          capture_output=True, text=True, errors="replace")
    if "Stream #" not in proc.stderr:
        raise DownloadError(f"cannot open {source}: {short_message(proc.stderr)}")
    return parse_ffmpeg_info(proc.stderr)


def count_frames(path: Path) -> int:
    """Frames in a local video, by decoding it (exact; slower than the header's guess)."""
    return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])


def encode_args(max_height: int | None) -> list[str]:
    """ffmpeg output options: H.264, no audio, height capped at max_height (even sizes)."""
    scale = [] if max_height is None else [
        "-vf", f"scale=-2:'trunc(min(ih,{max_height})/2)*2'"]
    return [*scale, *_ENCODE]


def join_pieces(pieces: list[Path], out: Path) -> None:
    """Concatenate pieces with identical encodings without re-encoding."""
    if len(pieces) == 1:
        shutil.copyfile(pieces[0], out)
        return
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in pieces))
    try:
        _run_ffmpeg(["-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                     "-movflags", "+faststart", str(out)], what="joining the pieces")
    finally:
        listing.unlink(missing_ok=True)


# --------------------------------------------------------------------------- yt-dlp calls


class _Log:
    """yt-dlp's logger: keeps warnings and errors for the error message, prints nothing."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.fetching = False  # True once the media itself is being fetched (not the page)

    def debug(self, msg: str) -> None:
        pass

    info = debug

    def warning(self, msg: str) -> None:
        self.lines.append(msg)

    error = warning


def format_selector(max_height: int | None) -> str:
    """Best single format with video (no merging needed), H.264 in mp4 preferred, at most
    max_height tall when the height is known."""
    h = "" if max_height is None else f"[height<=?{max_height}]"
    return f"bv*{h}[ext=mp4]/bv*{h}/b{h}/bv*/b"


def _params(request: Request, options: Options, log: _Log, **extra) -> dict:
    return {"format": format_selector(request.max_height), "quiet": True, "no_warnings": True,
            "noprogress": True, "logger": log, "retries": options.retries,
            "fragment_retries": options.retries, "socket_timeout": options.socket_timeout_s,
            "noplaylist": True, "continuedl": True, "cachedir": False, "color": "no_color",
            # YouTube's player challenges need a JavaScript runtime (with yt-dlp-ejs); yt-dlp
            # enables only deno by default, node is more often installed.
            "js_runtimes": {"deno": {}, "node": {}},
            "ffmpeg_location": ffmpeg_exe(), **extra}


def _ytdlp(params: dict, action: Callable) -> object:
    """Run `action(ydl)` with a YoutubeDL made of `params`, in a copied context.

    yt-dlp's section downloader checks for ffmpeg through a context variable that only its
    command line sets; set it to imageio-ffmpeg's binary here without leaking it."""
    def run():
        import yt_dlp  # deferred: yt-dlp takes about a second to import, and most runs never download
        from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor  # deferred, as yt_dlp

        FFmpegPostProcessor._ffmpeg_location.set(params["ffmpeg_location"])
        with yt_dlp.YoutubeDL(params) as ydl:
            return action(ydl)
    return contextvars.copy_context().run(run)


def _tool_errors() -> tuple[type[BaseException], ...]:
    from yt_dlp.utils import DownloadError as YtDlpDownloadError  # deferred, as yt_dlp
    from yt_dlp.utils import ExtractorError  # deferred, as yt_dlp

    return (YtDlpDownloadError, ExtractorError)


def extract(request: Request, options: Options, log: _Log) -> tuple[dict, dict]:
    """(raw, selected): yt-dlp's unprocessed info, and the processed one of the chosen format."""
    raw = _ytdlp(_params(request, options, log),
                 lambda ydl: ydl.extract_info(request.url, download=False, process=False))
    selected = _ytdlp(_params(request, options, log),
                      lambda ydl: ydl.process_ie_result(copy.deepcopy(raw), download=False))
    return raw, selected


def fetch_piece(raw: dict, piece: Piece, target: Path, request: Request, options: Options,
                log: _Log) -> None:
    """Download source times [piece.start_s, piece.end_s) into target, cut exactly."""
    from yt_dlp.utils import download_range_func  # deferred, as yt_dlp

    params = _params(request, options, log, outtmpl=str(target), overwrites=True,
                     download_ranges=download_range_func(None, [(piece.start_s, piece.end_s)]),
                     force_keyframes_at_cuts=True,
                     # -f mp4 after yt-dlp's own -f: the last one wins, whatever the source.
                     external_downloader_args={"ffmpeg_o": [*encode_args(request.max_height), "-f", "mp4"]})
    log.fetching = True  # the page was read before (`raw`): this fetches media
    _ytdlp(params, lambda ydl: ydl.process_ie_result(copy.deepcopy(raw), download=True))
    if not target.is_file():
        raise DownloadError(f"yt-dlp wrote no file for piece {piece.index} of {request.url}")


def _direct_info(request: Request) -> dict:
    """yt-dlp info for a plain file URL its generic extractor would not take (an archive).
    The extension is 'bin': yt-dlp refuses to write 'unusual' ones such as 'tar'."""
    return {"id": request.name, "title": request.name, "url": request.url, "ext": "bin",
            "webpage_url": request.url, "extractor": "direct", "extractor_key": "Direct"}


ARCHIVE_SUFFIXES = (".tar", ".zip")


def is_archive(url_or_path: str | Path) -> bool:
    return Path(urlparse(str(url_or_path)).path).suffix.lower() in ARCHIVE_SUFFIXES


# --------------------------------------------------------------------------- the cache


def sidecar_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}.json"


def cached_clip(out_dir: Path, request: Request) -> Clip | None:
    """The clip an earlier call downloaded for the same request, if its file is intact."""
    side = sidecar_path(out_dir, request.name)
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if data.get("format") != SIDECAR_FORMAT or {k: data.get(k) for k in request.key()} != request.key():
        return None
    path = out_dir / str(data.get("file"))
    if not path.is_file() or path.stat().st_size != data.get("size_bytes") or sha256_of(path) != data.get("sha256"):
        return None
    fields = {k: data[k] for k in Clip.__dataclass_fields__ if k not in ("path", "cached")}
    return Clip(path=path, cached=True, **fields)


def _prepare_work(work: Path, plan: dict) -> None:
    """Keep the work folder of an interrupted call with the same plan; else start afresh."""

    plan_file = work / "plan.json"
    try:
        same = json.loads(plan_file.read_text()) == plan
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        write_json(plan_file, plan)


def _drop_unfinished(work: Path) -> None:
    """Remove files still being written (kept: finished pieces, the plan, yt-dlp's .part
    of a whole-file download, which it resumes with a Range request)."""
    for path in work.glob("*.fetch.mp4*"):
        path.unlink(missing_ok=True)
    (work / "joined.mp4").unlink(missing_ok=True)


# --------------------------------------------------------------------------- fetching


def _with_retries(action: Callable, options: Options, log: _Log):
    """Run action(); retry transient network failures up to options.retries times."""
    for attempt in range(options.retries + 1):
        try:
            return action()
        except (*_tool_errors(), DownloadError) as err:
            kind = err.kind if isinstance(err, DownloadError) else classify_error(
                err, context=" ".join(log.lines[-3:]), during_fetch=log.fetching)
            if kind not in TRANSIENT or attempt == options.retries:
                raise
            time.sleep(options.retry_wait_s * 2 ** attempt)


def _stream_of(selected: dict) -> tuple[str, dict | None]:
    fmt = (selected.get("requested_formats") or [selected])[0]
    return fmt["url"], fmt.get("http_headers") or selected.get("http_headers")


def _check_interval(request: Request, duration_s: float | None) -> None:
    if duration_s and request.end_s > duration_s + 0.5:
        raise DownloadError(f"the interval ends at {request.end_s:g} s but {request.url} is only "
                            f"{duration_s:.1f} s long; fix --end (or the manifest's end_s)", kind="request")


def _check_space(out_dir: Path, selected: dict, request: Request) -> None:
    """Refuse early when the clip clearly cannot fit (estimate from the format's bitrate)."""
    kbps = selected.get("tbr") or selected.get("vbr")
    seconds = (request.end_s - request.start_s) if request.is_section else selected.get("duration")
    if not (kbps and seconds):
        return
    needed = 2 * kbps * 125 * seconds  # a piece and the joined clip exist at once
    free = shutil.disk_usage(out_dir).free
    if free < needed:
        raise DownloadError(f"disk full: about {needed / 1e6:.0f} MB are needed in {out_dir} and "
                            f"{free / 1e6:.0f} MB are free; free some space or choose another --out")


def _fetch_checked(raw: dict, piece: Piece, path: Path, request: Request, options: Options,
                   log: _Log) -> None:
    """Fetch one piece and check its frame count; fetch it again once if it falls short
    (a dropped connection can end ffmpeg early without an error)."""
    tmp = path.with_name(f"{path.stem}.fetch.mp4")
    frames = 0
    for _ in range(2):
        _with_retries(lambda: fetch_piece(raw, piece, tmp, request, options, log), options, log)
        frames = count_frames(tmp)
        if frames == piece.frames:
            os.replace(tmp, path)
            return
    tmp.unlink(missing_ok=True)
    raise DownloadError(
        f"piece {piece.index} of {request.url} ({piece.start_s:.2f}-{piece.end_s:.2f} s) has {frames} "
        f"frames where {piece.frames} were expected: the video may end before {request.end_s:g} s or "
        "have a variable frame rate; check the interval")


def check_clip(path: Path, *, frames: int, fps: float) -> None:
    """The clip has exactly `frames` frames and lasts frames / fps (within two frames)."""
    counted = count_frames(path)
    duration = probe(path).duration_s or 0.0
    if counted != frames or abs(duration - frames / fps) > 2 / fps:
        raise DownloadError(f"the joined clip has {counted} frames and lasts {duration:.3f} s where "
                            f"{frames} frames ({frames / fps:.3f} s) were expected; delete "
                            f"{path.parent} and download again")


def _fetch_section(request: Request, options: Options, work: Path,
                   report: Callable[[Progress], None], log: _Log) -> tuple[Path, str]:
    raw, selected = _with_retries(lambda: extract(request, options, log), options, log)
    url, headers = _stream_of(selected)
    stream = _with_retries(lambda: probe(url, headers=headers), options, log)
    _check_interval(request, selected.get("duration") or stream.duration_s)
    _check_space(work.parent, selected, request)
    pieces = plan_pieces(request.start_s, request.end_s, stream.fps, options.piece_s)
    _prepare_work(work, {"request": request.key(), "fps": stream.fps,
                         "pieces": [asdict(p) for p in pieces]})
    paths = [work / f"piece_{p.index:04d}.mp4" for p in pieces]
    reused = sum(p.is_file() for p in paths)
    total_s = request.end_s - request.start_s
    report(Progress("pieces", 0.0, total_s, "s", reused))
    for piece, path in zip(pieces, paths):
        if not path.is_file():
            _fetch_checked(raw, piece, path, request, options, log)
        report(Progress("pieces", min(total_s, piece.end_s - request.start_s), total_s, "s", reused))
    joined = work / "joined.mp4"
    join_pieces(paths, joined)
    check_clip(joined, frames=sum(p.frames for p in pieces), fps=stream.fps)
    return joined, "exact"


def _fetch_any(request: Request, options: Options, work: Path, report: Callable[[Progress], None],
               log: _Log) -> tuple[Path, str]:
    """A section fetched as a section; if the host will not serve part of the file (no byte
    ranges, and the index at the file's end: ffmpeg cannot seek), the whole file, cut here."""
    if not request.is_section:
        return _fetch_whole(request, options, work, report, log)
    try:
        return _fetch_section(request, options, work, report, log)
    except (DownloadError, *_tool_errors()) as err:
        kind = err.kind if isinstance(err, DownloadError) else classify_error(err, context=" ".join(log.lines[-3:]))
        if kind != "other":
            raise  # unavailable, network, disk, a bad interval: fetching the whole file would not help
        log.lines.append(f"section download failed ({short_message(str(err))}); fetching the whole file")
    shutil.rmtree(work, ignore_errors=True)
    whole, _ = _fetch_whole(request, options, work, report, log)
    section = work / "section.mp4"
    _cut_local(whole, request, section)
    return section, "exact"


def _fetch_whole(request: Request, options: Options, work: Path,
                 report: Callable[[Progress], None], log: _Log) -> tuple[Path, str]:
    _prepare_work(work, {"request": request.key()})

    def hook(status: dict) -> None:
        if status.get("status") == "downloading":
            log.fetching = True
            total = status.get("total_bytes") or status.get("total_bytes_estimate")
            report(Progress("bytes", float(status.get("downloaded_bytes") or 0), total, "B"))

    params = _params(request, options, log, outtmpl=str(work / "whole.%(ext)s"), progress_hooks=[hook])
    if is_archive(request.url):
        action = lambda ydl: ydl.process_ie_result(_direct_info(request), download=True)  # noqa: E731
    else:
        action = lambda ydl: ydl.extract_info(request.url, download=True)  # noqa: E731
    info = _with_retries(lambda: _ytdlp(params, action), options, log)
    path = Path(info["requested_downloads"][0]["filepath"])
    if is_archive(request.url):  # back to its real extension
        path = path.replace(path.with_suffix(Path(urlparse(request.url).path).suffix.lower()))
    return path, "whole"


def _finish(path: Path, request: Request, out_dir: Path, cut: str) -> Clip:
    """Move the finished video into place and write its sidecar (in that order: a sidecar
    never describes a file that is not there)."""

    stream = probe(path)
    frames = count_frames(path)
    final = out_dir / f"{request.name}{path.suffix}"
    clip = Clip(path=final, source=request.url, start_s=request.start_s, end_s=request.end_s,
                max_height=request.max_height, sha256=sha256_of(path), size_bytes=path.stat().st_size,
                fps=stream.fps, frames=frames, duration_s=round(frames / stream.fps, 6),
                width=stream.width, height=stream.height, cut=cut)
    for old in out_dir.glob(f"{request.name}.*"):  # another container from an older call
        if old != final and old.stem == request.name and old.suffix != ".json" and old.is_file():
            old.unlink()
    os.replace(path, final)
    write_json(sidecar_path(out_dir, request.name), clip.sidecar())
    return clip


def _as_download_error(err: BaseException, request: Request, out_dir: Path, log: _Log) -> DownloadError:
    if isinstance(err, DownloadError) and (err.kind != "other" or classify(str(err)) == "other"):
        return err  # already explained: its kind is known, or its text says nothing more
    context = " ".join(log.lines[-3:])
    message = f"{err} {context}"
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        message = f"No space left on device: {err}"
    kind = classify_error(err, context=context, during_fetch=log.fetching)
    return explain(message, source=request.url, out_dir=out_dir, resumable=True, kind=kind)


def fetch(request: Request, *, out_dir: str | Path | None = None, options: Options = Options(),
          on_progress: Callable[[Progress], None] | None = None) -> Clip:
    """Download `request` into out_dir (default: `videos_dir()`) and return the Clip.

    Idempotent: a clip already there for the same request (sidecar and sha256 match) is
    returned at once (`Clip.cached`). An interrupted section resumes from its finished
    pieces. Errors are DownloadError with one line that says what to do; they leave no
    partial file except the resume state of a transient failure (in .<name>.parts/)."""

    out = Path(out_dir) if out_dir is not None else videos_dir()
    out.mkdir(parents=True, exist_ok=True)
    report = on_progress or (lambda progress: None)
    cached = cached_clip(out, request)
    if cached is not None:
        report(Progress("cached", cached.duration_s, cached.duration_s, "s"))
        return cached
    work, log = out / f".{request.name}.parts", _Log()
    try:
        path, cut = _fetch_any(request, options, work, report, log)
        if cut == "whole" and is_archive(path):
            path = archive_to_video(path, work / "video.mp4", max_height=request.max_height)
        clip = _finish(path, request, out, cut)
    except KeyboardInterrupt:
        _drop_unfinished(work)
        raise
    except (DownloadError, OSError, *_tool_errors()) as err:
        error = _as_download_error(err, request, out, log)
        if error.kind in TRANSIENT:  # keep what finished: the same command resumes
            _drop_unfinished(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        raise error from None
    shutil.rmtree(work, ignore_errors=True)
    return clip


# --------------------------------------------------------------------------- local files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def images_to_video(images: Iterable[bytes], out: Path, *, fps: float, max_height: int | None) -> int:
    """Encode an iterable of image file contents (bytes, in order) into an mp4 at fps.
    ffmpeg decodes them from a pipe, so memory stays constant. Returns the image count."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "image2pipe",
           "-framerate", f"{fps:g}", "-i", "-", *encode_args(max_height), str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    count = 0
    try:
        for data in images:
            proc.stdin.write(data)
            count += 1
    except BrokenPipeError:
        pass
    finally:
        proc.stdin.close()
        error = proc.stderr.read().decode(errors="replace")
        proc.wait()
    if proc.returncode != 0 or count == 0:
        out.unlink(missing_ok=True)
        raise DownloadError(f"cannot make a video of the images: {short_message(error) if error else 'no images'}")
    return count


def _timestamps_fps(stamps: list[float]) -> float | None:
    """Frame rate from sorted per-frame timestamps in microseconds (A2D2's `cam_tstamp`)."""
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return None
    return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e6)


def archive_to_video(archive: Path, out: Path, *, fps: float | None = None,
                     max_height: int | None = DEFAULT_MAX_HEIGHT) -> Path:
    """A tar of frames (A2D2's camera tars: PNGs with a JSON per frame) -> an mp4.

    Images are taken in name order; the frame rate comes from the JSONs' `cam_tstamp`
    (microseconds) when they have one, else from `fps`."""
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        images = [m for m in members if Path(m.name).suffix.lower() in IMAGE_SUFFIXES]
        stamps = sorted(float(json.load(tar.extractfile(m)).get("cam_tstamp", 0))
                        for m in members if m.name.endswith(".json"))
        rate = _timestamps_fps([s for s in stamps if s > 0]) or fps
        if not images:
            raise DownloadError(f"{archive.name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        if not rate:
            raise DownloadError(f"{archive.name} does not say its frame rate; give --fps")
        images_to_video((tar.extractfile(m).read() for m in images), out, fps=rate, max_height=max_height)
    return out


def _cut_local(path: Path, request: Request, out: Path) -> None:
    """Cut [start_s, end_s) of a local video exactly (accurate seek, re-encode) and check it."""
    stream = probe(path)
    (piece,) = plan_pieces(request.start_s, request.end_s, stream.fps, math.inf)
    _run_ffmpeg(["-y", "-ss", repr(piece.start_s), "-t", repr(piece.end_s - piece.start_s),
                 "-i", str(path), *encode_args(request.max_height), str(out)], what=f"cutting {path}")
    check_clip(out, frames=piece.frames, fps=stream.fps)


def import_local(path: str | Path, request: Request, *, out_dir: str | Path | None = None,
                 fps: float | None = None) -> Clip:
    """Bring a video obtained by hand into the output folder, with a sidecar: a video file
    (cut to the request's interval if it has one), a folder of images, or a tar of images.
    `fps`: the frame rate of images that do not say theirs."""

    source = Path(path).expanduser()
    if not source.exists():
        raise DownloadError(f"{source} does not exist; give the file or folder you downloaded by hand")
    out = Path(out_dir) if out_dir is not None else videos_dir()
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".{request.name}.parts"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    local = Request(f"file://{source.resolve()}", request.name, request.start_s, request.end_s,
                    request.max_height)
    try:
        video = _local_video(source, local, work, fps)
        clip = _finish(video, local, out, "local")
    except OSError as err:
        raise _as_download_error(err, local, out, _Log()) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return clip


def _local_video(source: Path, request: Request, work: Path, fps: float | None) -> Path:
    if source.is_dir():
        images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not fps:
            raise DownloadError(f"give --fps: the frame rate the images in {source} were recorded at")
        out = work / "video.mp4"
        images_to_video((p.read_bytes() for p in images), out, fps=fps, max_height=request.max_height)
        return out
    if is_archive(source):
        return archive_to_video(source, work / "video.mp4", fps=fps, max_height=request.max_height)
    if request.is_section:
        out = work / "video.mp4"
        _cut_local(source, request, out)
        return out
    probe(source)  # refuses what is not a video
    out = work / f"video{source.suffix}"
    shutil.copyfile(source, out)
    return out


# --------------------------------------------------------------------------- plain files


def fetch_file(url: str, target: str | Path, *, sha256: str | None = None, options: Options = Options(),
               on_progress: Callable[[Progress], None] | None = None) -> str:
    """Download a plain file (a model tarball) to `target` with yt-dlp's resumable HTTP
    downloader; check `sha256` when one is given. Returns the file's sha256.

    Nothing is left at `target` unless the download is complete and the checksum matches;
    a transient failure keeps yt-dlp's .part file in a hidden folder next to it (resume)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.parts"
    work.mkdir(exist_ok=True)
    request = Request(url, target.name.replace(" ", "_"), max_height=None)
    log, report = _Log(), on_progress or (lambda progress: None)

    def hook(status: dict) -> None:
        if status.get("status") == "downloading":
            log.fetching = True
            total = status.get("total_bytes") or status.get("total_bytes_estimate")
            report(Progress("bytes", float(status.get("downloaded_bytes") or 0), total, "B"))

    info = _direct_info(request)
    params = _params(request, options, log, outtmpl=str(work / "file.bin"), progress_hooks=[hook])
    try:
        _with_retries(lambda: _ytdlp(params, lambda ydl: ydl.process_ie_result(dict(info), download=True)),
                      options, log)
    except (DownloadError, OSError, *_tool_errors()) as err:
        error = _as_download_error(err, request, target.parent, log)
        if error.kind not in TRANSIENT:
            shutil.rmtree(work, ignore_errors=True)
        raise error from None
    digest = sha256_of(work / "file.bin")
    if sha256 and digest != sha256.lower():
        shutil.rmtree(work, ignore_errors=True)
        raise DownloadError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}; the "
                            "file on the server changed or arrived corrupt; nothing was kept")
    os.replace(work / "file.bin", target)
    shutil.rmtree(work, ignore_errors=True)
    return digest
