"""What crosses the link: model updates going down, sampled frames going up.

Update encoding (SPEC.md, the original's): 1 bit per parameter for the mask, packed, then
the kept values as float16; the whole payload gzip -9. Downlink bits = compressed bytes x 8.
A `full` update sends every value and no mask.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class EncodedUpdate:
    """One model update as sent down, with its ledger (sizes in bytes)."""

    payload: bytes  # gzip-compressed
    num_params: int
    num_sent: int
    full: bool
    mask_bytes: int
    value_bytes: int

    @property
    def compressed_bytes(self) -> int:
        return len(self.payload)

    @property
    def bits(self) -> int:
        return 8 * len(self.payload)


def encode_update(values: np.ndarray, mask: np.ndarray | None) -> EncodedUpdate:
    """Encode new parameter values. values: (P,) float32 all parameters after training;
    mask: (P,) bool, the parameters sent, or None for a full update."""
    if mask is None:
        mask_part = b""
        kept = values
    else:
        if mask.shape != values.shape:
            raise ValueError(f"mask {mask.shape} and values {values.shape} must match")
        mask_part = np.packbits(mask).tobytes()
        kept = values[mask]
    value_part = kept.astype(np.float16).tobytes()
    payload = gzip.compress(mask_part + value_part, compresslevel=9, mtime=0)
    return EncodedUpdate(payload=payload, num_params=values.size, num_sent=kept.size,
                         full=mask is None, mask_bytes=len(mask_part), value_bytes=len(value_part))


def decode_update(update: EncodedUpdate, base: np.ndarray) -> np.ndarray:
    """The edge's parameters after applying `update` to `base` (P,) float32; `base` is not
    modified. Values arrive as float16, so the edge holds what was sent, not the server's
    float32 (a lossy encoding costs what it costs)."""
    raw = gzip.decompress(update.payload)
    if base.size != update.num_params:
        raise ValueError(f"update is for {update.num_params} parameters, the model has {base.size}")
    values = np.frombuffer(raw, np.float16, offset=update.mask_bytes).astype(np.float32)
    if update.full:
        return values.copy()
    mask = np.unpackbits(np.frombuffer(raw[: update.mask_bytes], np.uint8), count=base.size).astype(bool)
    out = base.copy()
    out[mask] = values
    return out


def png_bytes(frame: np.ndarray) -> int:
    """Size in bytes of one (H, W, 3) uint8 frame encoded as PNG (lossless uplink)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getbuffer().nbytes
