"""Update encoding: known sizes and exact round trips."""
import gzip

import numpy as np
import pytest

from amslib.sim.codec import decode_update, encode_update, png_bytes


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


# -- the sparse encoders and their building blocks --------------------------------------------
from amslib.core.config import UPDATE_ENCODERS  # noqa: E402
from amslib.sim.codec import (  # noqa: E402
    f16_from_steps,
    f16_steps,
    gaps_from_indices,
    h264_segment,
    indices_from_gaps,
    label_png_bytes,
    unzigzag,
    varint_decode,
    varint_encode,
    zigzag,
)


def test_varint_known_bytes_and_round_trip():
    values = np.array([0, 1, 127, 128, 300, 2**35], np.uint64)
    data = varint_encode(values)
    assert data[:7] == bytes([0x00, 0x01, 0x7F, 0x80, 0x01, 0xAC, 0x02])
    np.testing.assert_array_equal(varint_decode(data, 6), values)
    with pytest.raises(ValueError, match="truncated"):
        varint_decode(data[:-1], 6)


def test_gaps_and_zigzag_known_values():
    np.testing.assert_array_equal(gaps_from_indices(np.array([0, 1, 5, 6, 10])), [0, 0, 3, 0, 3])
    np.testing.assert_array_equal(indices_from_gaps(np.array([0, 0, 3, 0, 3], np.uint64)), [0, 1, 5, 6, 10])
    np.testing.assert_array_equal(zigzag(np.array([0, -1, 1, -2, 2])), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(unzigzag(zigzag(np.array([7, -300, 0, 2**40]))), [7, -300, 0, 2**40])


def test_float16_steps_are_monotone_and_invertible():
    values = np.array([-2.0, -1e-3, -0.0, 0.0, 6e-8, 1e-3, 1.0, 65504.0], np.float32)
    steps = f16_steps(values)
    assert list(steps[:4]) == sorted(steps[:4]) and steps[2] == steps[3] == 0 and steps[4] == 1
    assert np.all(np.diff(steps[3:]) > 0)
    np.testing.assert_array_equal(f16_from_steps(steps), values.astype(np.float16))
    assert f16_steps(np.array([1.0]))[0] + 1 == f16_steps(np.array([1.0 + 2**-10]))[0]  # one ulp


def _realistic_update(size=50_000, fraction=0.1, seed=0):
    """Weights ~N(0, 0.1) and small changes at `fraction` of them, as after a few Adam steps."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.1, size).astype(np.float32)
    mask = rng.random(size) < fraction
    values = np.where(mask, base + rng.normal(0, 2e-3, size).astype(np.float32), base)
    return base, values, mask


@pytest.mark.parametrize("full", [False, True])
def test_sparse_f16_is_lossless_against_the_original(full):
    base, values, mask = _realistic_update()
    mask = None if full else mask
    original = decode_update(encode_update(values, mask), base)
    enc = encode_update(values, mask, encoder="sparse_f16", base=base)
    np.testing.assert_array_equal(decode_update(enc, base), original)
    assert enc.encoder == "sparse_f16" and enc.bits == 8 * len(enc.payload)
    assert enc.num_sent == (values.size if full else mask.sum()) and enc.full == full


def test_sparse_encoders_beat_the_original_on_the_same_update():
    base, values, mask = _realistic_update()
    sizes = {name: encode_update(values, mask, encoder=name, base=base).compressed_bytes
             for name in UPDATE_ENCODERS}
    assert sizes["sparse_f16"] < 0.8 * sizes["original"], sizes
    assert sizes["sparse_q8"] < sizes["original"], sizes


def test_q8_error_is_within_half_a_step_and_only_where_sent():
    base, values, mask = _realistic_update()
    out = decode_update(encode_update(values, mask, encoder="sparse_q8", base=base), base)
    np.testing.assert_array_equal(out[~mask], base[~mask])
    change = np.abs(values - base)[mask]
    step = change.max() / 127  # the largest block scale bounds every block's
    assert np.abs(out - values)[mask].max() <= 0.51 * step + 1e-7


def test_sparse_encoders_need_the_base_and_a_known_name():
    with pytest.raises(ValueError, match="give base"):
        encode_update(np.zeros(4, np.float32), None, encoder="sparse_q8")
    with pytest.raises(ValueError, match="unknown update encoder"):
        encode_update(np.zeros(4, np.float32), None, encoder="zip")


def _smooth_frames(n=6, h=32, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(x * 4 + 9 * k) % 256, (y * 8) % 256, np.full_like(x, 90 + 5 * k)], -1)
                     for k in range(n)]).astype(np.uint8)


def test_h264_segment_round_trip_costs_about_its_bitrate():
    frames = _smooth_frames()
    bits, decoded = h264_segment(frames, kbps=100, fps=2.0)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert 0 < bits < 4 * 100_000 * len(frames) / 2.0  # within a few x of 100 Kbps for 3 s
    mse = np.mean((decoded.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 25  # a lossy but faithful copy
    with pytest.raises(ValueError, match="even"):
        h264_segment(np.zeros((1, 31, 64, 3), np.uint8), kbps=100, fps=1)


def test_label_png_is_small_for_flat_labels():
    assert 0 < label_png_bytes(np.zeros((32, 64), np.uint8)) < 200


def test_h264_segment_is_deterministic():
    frames = _smooth_frames(n=3)
    (bits_a, a), (bits_b, b) = (h264_segment(frames, kbps=80, fps=1.0) for _ in range(2))
    assert bits_a == bits_b and np.array_equal(a, b)
