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

The parts: `download_plan` (requests, options, clips, the plan of pieces; pure),
`download_errors` (DownloadError, and what an error means), `ffmpeg_tools` (probe, count,
check, join, encode images); here, yt-dlp's calls, the cache, fetching, importing a local
file and plain files. The names of those parts stay importable from here.
"""
from __future__ import annotations

import contextvars
import copy
import errno
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from amslib.core.files import sha256_of, videos_dir, write_json
from amslib.data.download_errors import TRANSIENT, DownloadError, classify, classify_error, explain, short_message
from amslib.data.download_plan import (
    DEFAULT_MAX_HEIGHT,
    DEFAULT_PIECE_S,
    SIDECAR_FORMAT,
    Clip,
    Options,
    Piece,
    Progress,
    Request,
    StreamInfo,
    frame_range,
    name_for_url,
    parse_ffmpeg_info,
    plan_pieces,
    request_for,
    snap_fps,
)
from amslib.data.ffmpeg_tools import (
    IMAGE_SUFFIXES,
    _run_ffmpeg,
    archive_to_video,
    check_clip,
    count_frames,
    encode_args,
    ffmpeg_exe,
    images_to_video,
    join_pieces,
    probe,
)

# The download API as one module, its parts' names included (callers import them from here).
__all__ = [
    "DEFAULT_MAX_HEIGHT", "DEFAULT_PIECE_S", "SIDECAR_FORMAT", "TRANSIENT", "ARCHIVE_SUFFIXES", "IMAGE_SUFFIXES",
    "Clip", "DownloadError", "Options", "Piece", "Progress", "Request", "StreamInfo", "archive_to_video",
    "cached_clip", "check_clip", "classify", "classify_error", "count_frames", "encode_args", "explain",
    "extract", "fetch", "fetch_file", "fetch_piece", "ffmpeg_exe", "format_selector", "frame_range",
    "images_to_video", "import_local", "is_archive", "join_pieces", "name_for_url", "parse_ffmpeg_info",
    "plan_pieces", "probe", "request_for", "short_message", "sidecar_path", "snap_fps",
]


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
