"""The link: hand-computed transmission times over constant rates and traces."""
import math

import numpy as np
import pytest

from amslib.sim.link import Link, RateTrace, make_link


def test_constant_rate_and_queueing():
    link = Link(RateTrace.constant(8.0), latency_s=0.5)  # 8 Kbps = 8000 bit/s
    assert link.send(1.0, 8000) == pytest.approx(2.5)  # 1 s on the wire + 0.5 s latency
    assert link.send(1.5, 4000) == pytest.approx(3.0)  # waits until 2.0, then 0.5 s
    assert link.bits == 12000


def test_unlimited_link_adds_only_latency():
    link = make_link(None, "", 0.25)
    assert link.send(3.0, 10**9) == pytest.approx(3.25)


def test_trace_integrates_rate_over_time():
    trace = RateTrace(np.array([0.0, 2.0, 5.0]), np.array([8.0, 0.0, 16.0]))
    # 24 kbit from 1 s: 8 kbit by 2 s, nothing until 5 s, 16 kbit at 16 Kbps = 1 s more
    assert trace.finish_s(1.0, 24_000) == pytest.approx(6.0)
    assert trace.finish_s(0.0, 8_000) == pytest.approx(1.0)
    assert trace.kbps_at(3.0) == 0.0 and trace.kbps_at(100.0) == 16.0
    dead = RateTrace(np.array([0.0, 1.0]), np.array([8.0, 0.0]))
    assert math.isinf(dead.finish_s(0.5, 8_000))


def test_trace_from_csv(tmp_path):
    path = tmp_path / "up.csv"
    path.write_text("time_s,kbps\n1,100\n3,50\n")
    trace = RateTrace.from_csv(path)
    np.testing.assert_array_equal(trace.times_s, [0, 1, 3])  # extended back to 0 s
    np.testing.assert_array_equal(trace.kbps, [100, 100, 50])
    link = make_link(None, str(path), 0.0)
    assert link.send(2.5, 100_000) == pytest.approx(3.0 + 50_000 / 50_000)


@pytest.mark.parametrize("text, match", [
    ("t,rate\n0,1\n", "lacks column"),
    ("time_s,kbps\n0,1\n0,2\n", "increase strictly"),
    ("time_s,kbps\n0,-1\n", ">= 0"),
])
def test_bad_trace_files(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        RateTrace.from_csv(path)


def test_missing_trace_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="link trace not found"):
        make_link(None, str(tmp_path / "nope.csv"), 0.0)
