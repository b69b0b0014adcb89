"""What crosses the link: model updates going down, sampled frames and labels going up/down.

Update encoders (`encode_update(..., encoder=...)`), for the same update:
- `original` (SPEC.md, the original's): 1 bit per parameter for the mask, packed, then the
  kept values as float16; the whole payload gzip -9. A `full` update sends no mask.
- `sparse_f16`: the kept indices as gaps between them (delta coding, LEB128 varints: most
  gaps fit one byte); each float16 value as its distance, in float16 steps, from the float16
  of the value the edge already holds (small numbers: one or two varint bytes); all
  compressed with LZMA2. Lossless with respect to `original`: the edge gets the
  same float16 values.
- `sparse_q8`: the same indices; values as the *change* from the base the edge holds,
  quantised to 8 bits with one float16 scale per block of 1024 values. Lossy: the edge
  applies the decoded values, so it costs what it costs in mIoU.
Downlink bits = payload bytes x 8 for every encoder.

Uplink: PNG per frame (lossless) or an H.264 stream at a target bitrate (two-pass libx264,
preset medium, as the original), with the server training on the decoded frames.
"""
from __future__ import annotations

import gzip
import io
import lzma
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from amslib.core.registry import ENCODERS

# preset 6: on real updates as small as 9e (to the byte) and 2-3x faster
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6}]
_HEADER = struct.Struct("<BII")  # full flag, number of values sent, bytes of the index part
Q8_BLOCK = 1024  # values per quantisation scale in `sparse_q8`


@dataclass(frozen=True)
class EncodedUpdate:
    """One model update as sent down, with its ledger (sizes in bytes).

    `mask_bytes` and `value_bytes` are the raw sizes of the index part (bitmask or varint
    gaps) and of the value part (float16, or 8-bit codes and scales) before compression."""

    payload: bytes  # what crosses the link
    num_params: int
    num_sent: int
    full: bool
    mask_bytes: int
    value_bytes: int
    encoder: str = "original"

    @property
    def compressed_bytes(self) -> int:
        return len(self.payload)

    @property
    def bits(self) -> int:
        return 8 * len(self.payload)


class OriginalEncoder:
    """The original's encoding: packed 1-bit mask + float16 values, gzip -9 (SPEC.md)."""

    name = "original"

    def encode(self, values: np.ndarray, mask: np.ndarray | None, base: np.ndarray | None) -> EncodedUpdate:
        mask_part = b"" if mask is None else np.packbits(mask).tobytes()
        kept = values if mask is None else values[mask]
        value_part = kept.astype(np.float16).tobytes()
        payload = gzip.compress(mask_part + value_part, compresslevel=9, mtime=0)
        return EncodedUpdate(payload=payload, num_params=values.size, num_sent=kept.size,
                             full=mask is None, mask_bytes=len(mask_part), value_bytes=len(value_part))

    def decode(self, update: EncodedUpdate, base: np.ndarray) -> np.ndarray:
        raw = gzip.decompress(update.payload)
        values = np.frombuffer(raw, np.float16, offset=update.mask_bytes).astype(np.float32)
        if update.full:
            return values.copy()
        mask = np.unpackbits(np.frombuffer(raw[: update.mask_bytes], np.uint8), count=base.size).astype(bool)
        out = base.copy()
        out[mask] = values
        return out


class SparseEncoder:
    """Ours: kept indices as LEB128 varint gaps, values against what the edge holds (float16
    steps, lossless; or 8-bit changes, lossy), all LZMA2-compressed behind a small header."""

    def __init__(self, name: str, *, quantised: bool) -> None:
        self.name, self.quantised = name, quantised

    def encode(self, values: np.ndarray, mask: np.ndarray | None, base: np.ndarray | None) -> EncodedUpdate:
        if base is None or base.shape != values.shape:
            raise ValueError(f"the {self.name} encoder codes values against the edge's: give base, "
                             "the (P,) weights the edge holds before the update")
        index = np.flatnonzero(mask) if mask is not None else None
        index_part = b"" if index is None else varint_encode(gaps_from_indices(index))
        kept = values if index is None else values[index]
        held = base if index is None else base[index]
        value_part = (quantise_q8(kept - held) if self.quantised
                      else varint_encode(zigzag(f16_steps(kept) - f16_steps(held))))
        header = _HEADER.pack(mask is None, kept.size, len(index_part))
        payload = header + lzma.compress(index_part + value_part, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        return EncodedUpdate(payload=payload, num_params=values.size, num_sent=kept.size, full=mask is None,
                             mask_bytes=len(index_part), value_bytes=len(value_part), encoder=self.name)

    def decode(self, update: EncodedUpdate, base: np.ndarray) -> np.ndarray:
        full, num_sent, index_bytes = _HEADER.unpack_from(update.payload)
        raw = lzma.decompress(update.payload[_HEADER.size:], format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        index = np.arange(base.size) if full else indices_from_gaps(varint_decode(raw[:index_bytes], num_sent))
        if self.quantised:
            kept = base[index] + dequantise_q8(raw[index_bytes:], num_sent)
        else:
            steps = unzigzag(varint_decode(raw[index_bytes:], num_sent))
            kept = f16_from_steps(f16_steps(base[index]) + steps).astype(np.float32)
        out = base.copy()
        out[index] = kept
        return out


# The objects amslib.core.registry.ENCODERS names.
ORIGINAL = OriginalEncoder()
SPARSE_F16 = SparseEncoder("sparse_f16", quantised=False)
SPARSE_Q8 = SparseEncoder("sparse_q8", quantised=True)


def encode_update(values: np.ndarray, mask: np.ndarray | None, *, encoder: str = "original",
                  base: np.ndarray | None = None) -> EncodedUpdate:
    """Encode new parameter values. values: (P,) float32, all parameters after training;
    mask: (P,) bool, the parameters sent, or None for a full update; base: (P,) float32, what
    the edge holds before the update (needed by the sparse encoders, which code against it)."""
    if mask is not None and mask.shape != values.shape:
        raise ValueError(f"mask {mask.shape} and values {values.shape} must match")
    try:
        coder = ENCODERS.load(encoder)
    except ValueError as err:
        raise ValueError(f"unknown update encoder: {err}") from None
    return coder.encode(values, mask, base)


def encode_all(values: np.ndarray, mask: np.ndarray | None, *, base: np.ndarray,
               encoders: Iterable[str] = ENCODERS.names) -> dict[str, EncodedUpdate]:
    """The update (values (P,) float32, mask (P,) bool or None) under each of `encoders`
    (default: every registered one), against `base` (P,) float32, the weights the edge holds."""
    names = list(encoders)
    if len(names) == 1:
        return {names[0]: encode_update(values, mask, encoder=names[0], base=base)}
    # gzip and LZMA release the GIL: the encoders run side by side (one after the other, the
    # ledger's sizing took 3.0 of 72.9 s of a 60-s laptop AMS run, measured with bench.sim_overhead)
    futures = {name: _ENCODE_POOL.submit(encode_update, values, mask, encoder=name, base=base) for name in names}
    return {name: future.result() for name, future in futures.items()}


_ENCODE_POOL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="amslib-encode")


def decode_update(update: EncodedUpdate, base: np.ndarray) -> np.ndarray:
    """The edge's parameters after applying `update` to `base` (P,) float32; `base` is not
    modified. The edge holds what was sent (float16 values, or 8-bit changes), not the
    server's float32: a lossy encoding costs what it costs."""
    if base.size != update.num_params:
        raise ValueError(f"update is for {update.num_params} parameters, the model has {base.size}")
    return ENCODERS.load(update.encoder).decode(update, base)


# -- building blocks of the sparse encoders (pure, each with its inverse) --------------------
def gaps_from_indices(index: np.ndarray) -> np.ndarray:
    """(n,) strictly increasing indices -> (n,) uint64 gaps: index[0], then
    index[k] - index[k-1] - 1 (0 for neighbours)."""
    index = np.asarray(index, np.int64)
    return np.diff(index, prepend=-1).astype(np.uint64) - np.uint64(1)


def indices_from_gaps(gaps: np.ndarray) -> np.ndarray:
    """Inverse of `gaps_from_indices`."""
    return np.cumsum(gaps.astype(np.int64) + 1) - 1


def varint_encode(values: np.ndarray) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last
    byte of a number. (n,) uint64 -> bytes."""
    v = np.asarray(values, np.uint64)
    lengths = np.ones(v.size, np.int64)
    for k in range(1, 10):
        lengths += v >= np.uint64(1 << (7 * k))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    out = np.zeros(int(lengths.sum()), np.uint8)
    for k in range(int(lengths.max(initial=0))):
        sel = lengths > k
        byte = (v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[sel] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[sel] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def varint_decode(data: bytes, count: int) -> np.ndarray:
    """Inverse of `varint_encode`: the first `count` numbers of `data` as (count,) uint64."""
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(buf < 0x80)[:count]
    if ends.size != count:
        raise ValueError(f"truncated index part: expected {count} numbers, found {ends.size}")
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    out = np.zeros(count, np.uint64)
    for k in range(int(lengths.max(initial=0))):
        sel = lengths > k
        out[sel] |= (buf[starts[sel] + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return out


def f16_steps(values: np.ndarray) -> np.ndarray:
    """(n,) floats -> (n,) int64 positions of their float16 roundings on a monotone scale
    (0 for +-0, +1 for the smallest positive float16, -1 for the smallest negative...)."""
    bits = np.asarray(values, np.float32).astype(np.float16).view(np.uint16).astype(np.int64)
    magnitude = bits & 0x7FFF
    return np.where(bits & 0x8000, -magnitude, magnitude)


def f16_from_steps(steps: np.ndarray) -> np.ndarray:
    """Inverse of `f16_steps` (-0 comes back as +0, which is equal): (n,) float16."""
    steps = np.asarray(steps, np.int64)
    if np.any(np.abs(steps) > 0x7C00):
        raise ValueError("float16 step out of range (beyond infinity): a corrupt update")
    return np.where(steps < 0, (-steps) | 0x8000, steps).astype(np.uint16).view(np.float16)


def zigzag(values: np.ndarray) -> np.ndarray:
    """Signed (n,) int64 -> unsigned (n,) uint64, small magnitudes to small numbers:
    0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ..."""
    v = np.asarray(values, np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def unzigzag(values: np.ndarray) -> np.ndarray:
    """Inverse of `zigzag`."""
    v = np.asarray(values, np.uint64)
    return (v >> np.uint64(1)).astype(np.int64) ^ -(v & np.uint64(1)).astype(np.int64)


def byte_planes(values: np.ndarray) -> bytes:
    """(n,) array -> its bytes grouped by position: all first bytes, then all second bytes..."""
    return np.ascontiguousarray(values.view(np.uint8).reshape(values.size, values.itemsize).T).tobytes()


def from_byte_planes(data: bytes, dtype) -> np.ndarray:
    """Inverse of `byte_planes`."""
    itemsize = np.dtype(dtype).itemsize
    planes = np.frombuffer(data, np.uint8).reshape(itemsize, -1)
    return np.ascontiguousarray(planes.T).view(dtype).ravel()


def quantise_q8(changes: np.ndarray) -> bytes:
    """(n,) float32 changes -> float16 scales (one per block of Q8_BLOCK) then int8 codes,
    symmetric: code = round(change / scale), scale = max |change| of the block / 127."""
    n = changes.size
    blocks = -(-n // Q8_BLOCK)
    padded = np.zeros(blocks * Q8_BLOCK, np.float32)
    padded[:n] = changes
    peak = np.abs(padded.reshape(blocks, Q8_BLOCK)).max(axis=1)
    scales = (peak / 127.0).astype(np.float16)
    safe = np.where(scales > 0, scales.astype(np.float32), 1.0)
    codes = np.clip(np.round(padded.reshape(blocks, Q8_BLOCK) / safe[:, None]), -127, 127).astype(np.int8)
    return byte_planes(scales) + codes.ravel()[:n].tobytes()


def dequantise_q8(data: bytes, count: int) -> np.ndarray:
    """Inverse of `quantise_q8` up to rounding: (count,) float32 changes."""
    blocks = -(-count // Q8_BLOCK)
    scales = from_byte_planes(data[: 2 * blocks], np.float16).astype(np.float32)
    codes = np.frombuffer(data[2 * blocks: 2 * blocks + count], np.int8).astype(np.float32)
    return codes * np.repeat(scales, Q8_BLOCK)[:count]


# -- the uplink and labels -------------------------------------------------------------------
def png_bytes(frame: np.ndarray) -> int:
    """Size in bytes of one (H, W, 3) uint8 frame encoded as PNG (lossless uplink)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getbuffer().nbytes


def label_png_bytes(label: np.ndarray) -> int:
    """Size in bytes of one (H, W) uint8 label (class ids) as an 8-bit PNG."""
    buffer = io.BytesIO()
    Image.fromarray(label, mode="L").save(buffer, format="PNG")
    return buffer.getbuffer().nbytes


def h264_segment(frames: np.ndarray, *, kbps: float, fps: float) -> tuple[int, np.ndarray]:
    """Encode (N, H, W, 3) uint8 frames, shown at `fps`, as one H.264 stream at a target of
    `kbps` (two-pass libx264, preset medium: the original's settings) and decode it again.

    Returns (bits of the raw H.264 stream, (N, H, W, 3) uint8 decoded frames): the server
    trains on what it can decode, so a low bitrate costs accuracy. H and W must be even.
    """
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs even frame sizes, got {h}x{w}")
    exe = ffmpeg_exe()
    source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", f"{fps:.6g}", "-i", "-"]
    # a VBV buffer of one frame's budget keeps short segments (a lone key frame) near the target;
    # one thread: x264's threaded encoding gives different bytes run to run (runs must repeat)
    codec = ["-c:v", "libx264", "-preset", "medium", "-threads", "1", "-b:v", f"{kbps:.6g}k",
             "-maxrate", f"{kbps:.6g}k", "-bufsize", f"{kbps / fps:.6g}k", "-pix_fmt", "yuv420p"]
    raw = np.ascontiguousarray(frames, np.uint8).tobytes()
    with tempfile.TemporaryDirectory(prefix="amslib-h264-") as tmp:
        log, stream = str(Path(tmp) / "pass"), Path(tmp) / "segment.h264"
        for args in (["-pass", "1", "-passlogfile", log, "-f", "null", "-"],
                     ["-pass", "2", "-passlogfile", log, "-f", "h264", str(stream)]):
            _ffmpeg([exe, "-y", "-loglevel", "error", *source, *codec, *args], raw)
        decoded = _ffmpeg([exe, "-loglevel", "error", "-f", "h264", "-i", str(stream),
                           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], b"")
        bits = 8 * stream.stat().st_size
    out = np.frombuffer(decoded, np.uint8)
    if out.size != frames.size:
        raise CodecError(f"the H.264 round trip returned {out.size // (h * w * 3)} of {n} frames; "
                         "try --set uplink_codec=png")
    return bits, out.reshape(frames.shape)


class CodecError(OSError):
    """ffmpeg, which the H.264 uplink runs, is missing or failed; the message says what to do."""


def ffmpeg_exe() -> str:
    """The ffmpeg of imageio-ffmpeg (or $IMAGEIO_FFMPEG_EXE)."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:
        raise CodecError(f"the H.264 uplink needs ffmpeg, which was not found ({str(err).splitlines()[0]}); "
                         "reinstall imageio-ffmpeg, set IMAGEIO_FFMPEG_EXE, or use --set uplink_codec=png") from None


def _ffmpeg(command: list[str], stdin: bytes) -> bytes:
    try:
        proc = subprocess.run(command, input=stdin, capture_output=True, check=False)
    except OSError as err:  # the binary vanished or cannot run
        raise CodecError(f"cannot run ffmpeg ({err.strerror or err}); reinstall imageio-ffmpeg, set "
                         "IMAGEIO_FFMPEG_EXE, or use --set uplink_codec=png") from None
    if proc.returncode:
        lines = [line for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
        reason = lines[-1].strip()[:200] if lines else f"exit code {proc.returncode}"
        raise CodecError(f"ffmpeg failed while encoding the H.264 uplink ({reason}); "
                         "try --set uplink_codec=png")
    return proc.stdout
