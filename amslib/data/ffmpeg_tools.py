"""ffmpeg on local files (the one `imageio-ffmpeg` ships): probe a file or URL, count its
frames, check a clip's frame count and duration, join pieces without re-encoding, and encode
images (a folder, or a tar of frames) into an mp4.
"""
from __future__ import annotations

import errno
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

import imageio_ffmpeg

from amslib.data.download_errors import DownloadError, short_message
from amslib.data.download_plan import DEFAULT_MAX_HEIGHT, StreamInfo, parse_ffmpeg_info


# H.264 at near-transparent quality; no audio (the workbench never uses it).
_ENCODE = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-an")


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


def check_clip(path: Path, *, frames: int, fps: float) -> None:
    """The clip has exactly `frames` frames and lasts frames / fps (within two frames)."""
    counted = count_frames(path)
    duration = probe(path).duration_s or 0.0
    if counted != frames or abs(duration - frames / fps) > 2 / fps:
        raise DownloadError(f"the joined clip has {counted} frames and lasts {duration:.3f} s where "
                            f"{frames} frames ({frames / fps:.3f} s) were expected; delete "
                            f"{path.parent} and download again")



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
