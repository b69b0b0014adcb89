"""Update encoding: known sizes and exact round trips."""
import gzip

import numpy as np
import pytest

from amslib.codec import decode_update, encode_update, png_bytes


def test_sparse_update_known_layout_and_round_trip():
    values = np.arange(16, dtype=np.float32) / 4
    mask = np.zeros(16, bool)
    mask[[1, 5, 9]] = True
    enc = encode_update(values, mask)
    assert (enc.mask_bytes, enc.value_bytes, enc.num_sent) == (2, 6, 3)
    raw = gzip.decompress(enc.payload)
    assert raw[:2] == bytes([0b01000100, 0b01000000])  # packbits, big-endian bit order
    np.testing.assert_array_equal(np.frombuffer(raw[2:], np.float16), [0.25, 1.25, 2.25])
    base = np.full(16, -1.0, np.float32)
    out = decode_update(enc, base)
    expected = base.copy()
    expected[mask] = values[mask]
    np.testing.assert_array_equal(out, expected)
    assert np.all(base == -1.0), "decode must not modify the base"
    assert enc.bits == 8 * len(enc.payload)


def test_values_arrive_as_float16():
    values = np.array([1 / 3, 2.0], np.float32)
    out = decode_update(encode_update(values, None), np.zeros(2, np.float32))
    np.testing.assert_array_equal(out, values.astype(np.float16).astype(np.float32))
    assert out[0] != values[0]


def test_full_update_has_no_mask():
    enc = encode_update(np.ones(10, np.float32), None)
    assert enc.full and enc.mask_bytes == 0 and enc.value_bytes == 20


def test_sparse_is_smaller_than_full():
    rng = np.random.default_rng(0)
    values = rng.normal(size=100_000).astype(np.float32)
    mask = rng.random(100_000) < 0.1
    assert encode_update(values, mask).compressed_bytes < encode_update(values, None).compressed_bytes / 3


def test_mismatched_sizes_raise():
    with pytest.raises(ValueError, match="must match"):
        encode_update(np.zeros(4, np.float32), np.zeros(3, bool))
    enc = encode_update(np.zeros(4, np.float32), None)
    with pytest.raises(ValueError, match="parameters"):
        decode_update(enc, np.zeros(5, np.float32))


def test_png_bytes_smaller_for_flat_image():
    flat = np.zeros((32, 64, 3), np.uint8)
    noisy = np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)
    assert 0 < png_bytes(flat) < png_bytes(noisy)
