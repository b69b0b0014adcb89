"""Downloads through the real yt-dlp code path, offline: a local HTTP server on 127.0.0.1
serves a video made here, whose frames carry their own index as bars (so a test can read
which frames a download holds). Keyframes every 2 s make a keyframe cut visible."""
import errno
import io
import json
import math
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from local_http import serve_directory

from amslib.cli import main
from amslib.core.files import sha256_of
from amslib.data import download as dl

FPS = 25
FRAMES = 200  # 8 s
BAR_W = 16


def numbered_frame(i: int, height: int = 64) -> np.ndarray:
    """(H, 128, 3) uint8: eight bars, white where bit k of i is set."""
    frame = np.zeros((height, 8 * BAR_W, 3), np.uint8)
    for bit in range(8):
        if (i >> bit) & 1:
            frame[:, bit * BAR_W:(bit + 1) * BAR_W] = 255
    return frame


def frame_number(frame: np.ndarray) -> int:
    width = frame.shape[1] // 8
    return sum(int(frame[:, b * width + 3:(b + 1) * width - 3].mean() > 128) << b for b in range(8))


def write_numbered_video(path, *, frames=FRAMES, fps=FPS, gop=50):
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), (8 * BAR_W, 64), fps=fps, macro_block_size=1,
                                         output_params=["-g", str(gop), "-keyint_min", str(gop),
                                                        "-sc_threshold", "0", "-bf", "2"])
    writer.send(None)
    for i in range(frames):
        writer.send(numbered_frame(i))
    writer.close()


def frame_numbers(path) -> list[int]:
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return [frame_number(np.frombuffer(raw, np.uint8).reshape(h, w, 3)) for raw in reader]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    write_numbered_video(root / "clip.mp4")
    with serve_directory(root) as server:
        yield server


FAST = dl.Options(piece_s=1.0, retries=0, retry_wait_s=0.0)


# --------------------------------------------------------------------------- pure parts


def test_frame_range_and_pieces_known_answers():
    assert dl.frame_range(1.30, 4.30, 25) == (33, 108)  # 1.32 s is the first frame at or after 1.30
    assert dl.frame_range(1.28, 2.32, 25) == (32, 58)  # a frame on the start is in, on the end out
    pieces = dl.plan_pieces(1.30, 4.30, 25, 1.0)
    assert [p.frames for p in pieces] == [25, 25, 25]
    assert [round(p.start_s, 6) for p in pieces] == [1.30, 2.30, 3.30]  # half a frame before 33, 58, 83
    assert pieces[-1].end_s == pytest.approx(4.30)
    (whole,) = dl.plan_pieces(504, 1418, 30000 / 1001, math.inf)  # Driving in LA at 29.97 fps
    assert whole.frames == math.ceil(1418 * 30000 / 1001) - math.ceil(504 * 30000 / 1001) == 27393
    assert dl.plan_pieces(0, 1, 30, 1.0)[0].start_s == 0.0
    with pytest.raises(dl.DownloadError, match="holds no frame"):
        dl.plan_pieces(1.001, 1.002, 25, 1.0)


def test_parse_ffmpeg_info_and_snap():
    text = ("Input #0, mov,mp4, from 'x.mp4':\n  Duration: 00:15:14.00, start: 0.000000, bitrate: 900 kb/s\n"
            "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), "
            "854x480 [SAR 1:1 DAR 427:240], 800 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)\n")
    info = dl.parse_ffmpeg_info(text)
    assert (info.width, info.height, info.duration_s) == (854, 480, 914.0)
    assert info.fps == 30000 / 1001 and dl.snap_fps(25.0) == 25.0
    with pytest.raises(dl.DownloadError, match="no video stream"):
        dl.parse_ffmpeg_info("Stream #0:0: Audio: aac")


@pytest.mark.parametrize("message, kind", [
    ("ERROR: [youtube] Cw0d-nqSNE8: Video unavailable. This video has been removed by the uploader", "unavailable"),
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access", "unavailable"),
    ("ERROR: [generic] Unable to download webpage: HTTP Error 404: Not Found", "unavailable"),
    ("ERROR: [generic] Unable to download webpage: <urlopen error [Errno -3] Temporary failure in "
     "name resolution>", "network"),
    ("ERROR: Unable to download webpage: [Errno 111] Connection refused", "network"),
    ("ERROR: unable to write data: [Errno 28] No space left on device", "disk"),
    ("something odd", "other"),
])
def test_classify_known_messages(message, kind):
    assert dl.classify(message) == kind


def test_names_for_urls():
    assert dl.name_for_url("https://www.youtube.com/watch?v=Cw0d-nqSNE8") == "Cw0d-nqSNE8"
    assert dl.name_for_url("https://youtu.be/zkIADOEhk5I") == "zkIADOEhk5I"
    assert dl.name_for_url("http://127.0.0.1:80/videos/clip.mp4") == "clip"


def test_manual_rows_say_what_to_do():
    with pytest.raises(dl.DownloadError, match=r"by hand from https://www.cityscapes.*--from PATH"):
        dl.request_for("cityscapes_frankfurt")
    request = dl.request_for("outdoor_la")
    assert (request.name, request.start_s, request.end_s) == ("outdoor_la", 504, 1418)
    with pytest.raises(dl.DownloadError, match="both --start and --end"):
        dl.Request("http://x/y.mp4", "y", 1.0, None)


# --------------------------------------------------------------------------- real yt-dlp path


def test_section_has_exactly_the_right_frames_and_second_call_is_cached(served, tmp_path):
    request = dl.Request(served.url("clip.mp4"), "clip", 1.30, 4.30, max_height=None)
    tic = time.perf_counter()
    clip = dl.fetch(request, out_dir=tmp_path, options=FAST)
    first_s = time.perf_counter() - tic
    # Frames 33 (1.32 s) .. 107 (4.28 s); keyframes are at 0, 2, 4, 6 s, so a keyframe cut
    # would have started at frame 0 and a stream copy would have broken the tail.
    assert frame_numbers(clip.path) == list(range(33, 108))
    assert (clip.frames, clip.fps, clip.duration_s, clip.cut) == (75, 25.0, 3.0, "exact")
    side = json.loads((tmp_path / "clip.json").read_text())
    assert side["sha256"] == sha256_of(clip.path) and side["frames"] == 75
    assert (side["source"], side["start_s"], side["end_s"]) == (request.url, 1.30, 4.30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.json", "clip.mp4"]  # no work left

    before = len(served.log)
    tic = time.perf_counter()
    again = dl.fetch(request, out_dir=tmp_path, options=FAST)
    assert again.cached and again.sha256 == clip.sha256 and len(served.log) == before
    assert time.perf_counter() - tic < first_s / 5
    other = dl.fetch(dl.Request(request.url, "clip", 2.0, 2.4, max_height=None), out_dir=tmp_path, options=FAST)
    assert not other.cached and frame_numbers(other.path) == list(range(50, 60))


def test_interrupted_section_resumes_from_finished_pieces(served, tmp_path):
    request = dl.Request(served.url("clip.mp4"), "cut", 0.5, 3.5, max_height=None)
    seen = []

    def stop_after_first_piece(progress):
        seen.append(progress)
        if progress.done > 0:
            raise KeyboardInterrupt  # the user presses Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        dl.fetch(request, out_dir=tmp_path, options=FAST, on_progress=stop_after_first_piece)
    work = tmp_path / ".cut.parts"
    assert sorted(p.name for p in work.iterdir()) == ["piece_0000.mp4", "plan.json"]
    assert not (tmp_path / "cut.mp4").exists()

    resumed = []
    clip = dl.fetch(request, out_dir=tmp_path, options=FAST, on_progress=resumed.append)
    assert resumed[0].reused == 1 and resumed[-1].done == pytest.approx(3.0)
    assert frame_numbers(clip.path) == list(range(13, 88))  # 0.52 s .. 3.48 s, no frame twice
    assert not work.exists()


def test_whole_file_download_resumes_with_a_range_request(served, tmp_path):
    size = (served.root / "clip.mp4").stat().st_size
    gets = sum(1 for method, path, _ in served.log if method == "GET" and path == "clip.mp4")
    served.drop["clip.mp4"] = (gets + 2, size // 2)  # the 1st GET is yt-dlp sniffing the type
    request = dl.Request(served.url("clip.mp4"), "whole", max_height=None)
    with pytest.raises(dl.DownloadError, match="no network.*run the same command again"):
        dl.fetch(request, out_dir=tmp_path, options=dl.Options(retries=0))
    assert not (tmp_path / "whole.mp4").exists()
    part = [p for p in (tmp_path / ".whole.parts").iterdir() if p.name.endswith(".part")]
    kept = part[0].stat().st_size
    assert len(part) == 1 and 0 < kept < size

    first_log = len(served.log)
    clip = dl.fetch(request, out_dir=tmp_path, options=dl.Options(retries=0))
    ranges = [r for method, path, r in served.log[first_log:] if method == "GET" and path == "clip.mp4"]
    assert f"bytes={kept}-" in ranges, ranges  # it asked only for what it did not have
    assert clip.sha256 == sha256_of(served.root / "clip.mp4") and clip.frames == FRAMES


def test_errors_are_one_line_and_leave_nothing(served, tmp_path, monkeypatch):
    served.status["gone.mp4"] = 404
    with pytest.raises(dl.DownloadError, match="unavailable: removed, private") as err:
        dl.fetch(dl.Request(served.url("gone.mp4"), "gone", 0, 1), out_dir=tmp_path, options=FAST)
    assert "\n" not in str(err.value)
    with pytest.raises(dl.DownloadError, match="no network: cannot reach 127.0.0.1:9"):
        dl.fetch(dl.Request("http://127.0.0.1:9/clip.mp4", "refused", 0, 1), out_dir=tmp_path, options=FAST)
    with pytest.raises(dl.DownloadError, match="is only 8.0 s long"):
        dl.fetch(dl.Request(served.url("clip.mp4"), "late", 7, 12), out_dir=tmp_path, options=FAST)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(dl, "join_pieces", full)
    with pytest.raises(dl.DownloadError, match="disk full while writing to"):
        dl.fetch(dl.Request(served.url("clip.mp4"), "full", 0, 1), out_dir=tmp_path, options=FAST)
    assert list(tmp_path.iterdir()) == []  # not even a work folder


def test_cli_downloads_a_manifest_row_where_run_finds_it(served, tmp_path, monkeypatch, capsys):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "video_id,dataset,title,url,start_s,end_s,camera,classes,label_set,access,notes\n"
        f"local_clip,test,Local clip,{served.url('clip.mp4')},2,4,stationary,road;sky,cityscapes19,youtube,\n")
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path / "data"))
    assert main(["download", "local_clip", "--manifest", str(manifest), "--max-height", "32"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "50 frames" in out
    from amslib.data.video import open_video
    video = open_video("local_clip", height=32, fps=25, manifest=manifest)
    assert video.num_frames == 50 and video.classes == ("road", "sky")
    assert main(["download", "local_clip", "--manifest", str(manifest), "--max-height", "32"]) == 0
    assert "cached" in capsys.readouterr().out

    served.status["nope.mp4"] = 410
    code = main(["download", served.url("nope.mp4"), "--start", "0", "--end", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "unavailable" in err[0]
    assert not any((tmp_path / "o").iterdir())
    assert main(["download", "cityscapes_frankfurt"]) == 2
    assert "--from PATH" in capsys.readouterr().err


# --------------------------------------------------------------------------- local files


def test_import_local_video_cut_folder_and_a2d2_like_tar(tmp_path):
    write_numbered_video(tmp_path / "mine.mp4", frames=100)
    clip = dl.import_local(tmp_path / "mine.mp4", dl.Request("local", "mine", 1.0, 2.0, None),
                           out_dir=tmp_path / "out")
    assert frame_numbers(clip.path) == list(range(25, 50)) and clip.cut == "local"

    from PIL import Image
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(numbered_frame(i)).save(folder / f"frankfurt_{i:06d}_leftImg8bit.png")
    with pytest.raises(dl.DownloadError, match="give --fps"):
        dl.import_local(folder, dl.Request("local", "seq"), out_dir=tmp_path / "out")
    seq = dl.import_local(folder, dl.Request("local", "seq"), out_dir=tmp_path / "out", fps=17)
    assert frame_numbers(seq.path) == list(range(6)) and seq.fps == 17

    with tarfile.open(tmp_path / "a2d2.tar", "w") as tar:
        for i in range(5):  # frames 33.3 ms apart: 30 fps, read from cam_tstamp
            for suffix, data in ((".png", _png(numbered_frame(i))),
                                 (".json", json.dumps({"cam_tstamp": 1_000_000 + i * 33_333}).encode())):
                info = tarfile.TarInfo(f"camera_lidar/20180810150607/camera/cam_front_center/f_{i:09d}{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    a2d2 = dl.import_local(tmp_path / "a2d2.tar", dl.Request("local", "a2d2"), out_dir=tmp_path / "out")
    assert frame_numbers(a2d2.path) == list(range(5)) and a2d2.fps == pytest.approx(30, abs=0.01)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a2d2.json", "a2d2.mp4", "mine.json", "mine.mp4", "seq.json", "seq.mp4"]


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_direct_row_downloads_an_a2d2_like_tar_into_a_video(tmp_path, monkeypatch):
    www = tmp_path / "www"
    www.mkdir()
    with tarfile.open(www / "camera_frontcenter.tar", "w") as tar:
        for i in range(4):
            for suffix, data in ((".png", _png(numbered_frame(i))),
                                 (".json", json.dumps({"cam_tstamp": i * 40_000}).encode())):  # 25 fps
                info = tarfile.TarInfo(f"camera_lidar/x/camera/cam_front_center/f_{i:09d}{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    manifest = tmp_path / "manifest.csv"
    with serve_directory(www) as server:
        manifest.write_text(
            "video_id,dataset,title,url,start_s,end_s,camera,classes,label_set,access,notes\n"
            f"a2d2_local,a2d2,A2D2-like,{server.url('camera_frontcenter.tar')},,,dashcam,road;sky,cityscapes19,direct,\n")
        clip = dl.fetch(dl.request_for("a2d2_local", manifest=manifest, max_height=None),
                        out_dir=tmp_path / "videos", options=FAST)
    assert clip.path.name == "a2d2_local.mp4" and clip.cut == "whole"
    assert frame_numbers(clip.path) == [0, 1, 2, 3] and clip.fps == 25
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["a2d2_local.json", "a2d2_local.mp4"]


class _HTTPError(Exception):
    """Like yt-dlp's networking HTTPError: carries the response's status."""

    def __init__(self, status):
        super().__init__(f"HTTP Error {status}")
        self.status = status


def test_classify_by_exception_type_and_status_first():
    from yt_dlp.utils import DownloadError as YtDlpDownloadError
    from yt_dlp.utils import ExtractorError

    assert dl.classify("ERROR: HTTP Error 429: Too Many Requests") == "rate_limited"
    wrapped = YtDlpDownloadError("ERROR: unable to download video data: HTTP Error 403: Forbidden",
                                 exc_info=(None, _HTTPError(403), None))
    assert dl.classify_error(wrapped, during_fetch=True) == "expired"  # a fragment: the URL expired
    assert dl.classify_error(wrapped, during_fetch=False) == "unavailable"  # the page itself: refused
    assert dl.classify_error(_HTTPError(429)) == "rate_limited"
    assert dl.classify_error(_HTTPError(503)) == "network"
    assert dl.classify_error(_HTTPError(404)) == "unavailable"
    assert dl.classify_error(ExtractorError("Private video", expected=True)) == "unavailable"
    assert dl.classify_error(ConnectionResetError(104, "reset")) == "network"
    assert dl.classify_error(OSError(28, "No space left on device")) == "disk"
    assert dl.classify_error(RuntimeError("something odd")) == "other"
    for kind in ("expired", "rate_limited", "network"):
        assert kind in dl.TRANSIENT
    error = dl.explain("HTTP Error 403", source="https://example.invalid/v", out_dir=Path("."),
                       resumable=True, kind="expired")
    assert error.kind == "expired" and "run the same command again" in str(error) and "resumes" in str(error)


def test_section_from_a_host_without_byte_ranges_is_cut_here(tmp_path, monkeypatch):
    """A plain server (no Range support) of a clip whose index sits at the end of the file,
    where ffmpeg's section download gave up ("ffmpeg exited with code 183", as reported; here
    the piece download is made to fail that way): the whole file is fetched and the section
    cut locally, with exactly the frames a ranged host gives."""
    root = tmp_path / "www"
    root.mkdir()
    write_numbered_video(root / "clip.mp4")
    data = (root / "clip.mp4").read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")  # the index is at the end

    def refused(*args, **kwargs):
        raise dl.DownloadError("ERROR: ffmpeg exited with code 183")
    monkeypatch.setattr(dl, "fetch_piece", refused)
    with serve_directory(root) as server:
        server.ranges = False
        request = dl.Request(server.url("clip.mp4"), "clip", 1.30, 4.30, max_height=None)
        clip = dl.fetch(request, out_dir=tmp_path / "out", options=FAST)
        assert all(rng is None or rng.startswith("bytes=0-") for _, _, rng in server.log)  # the file from its start
    assert frame_numbers(clip.path) == list(range(33, 108)) and clip.cut == "exact"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.json", "clip.mp4"]


def test_an_unavailable_section_does_not_fall_back_to_the_whole_file(served, tmp_path, monkeypatch):
    def gone(*args, **kwargs):
        raise dl.DownloadError("ERROR: Video unavailable. This video has been removed", kind="unavailable")
    monkeypatch.setattr(dl, "fetch_piece", gone)
    fetched_whole = []
    monkeypatch.setattr(dl, "_fetch_whole", lambda *a, **k: fetched_whole.append(1))
    with pytest.raises(dl.DownloadError, match="unavailable"):
        dl.fetch(dl.Request(served.url("clip.mp4"), "gone", 1.30, 4.30, max_height=None), out_dir=tmp_path,
                 options=FAST)
    assert not fetched_whole
