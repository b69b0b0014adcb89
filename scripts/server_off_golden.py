"""Writes tests/data/server_off_golden.json: small runs of every remote scheme, recorded
before the server's time went on the clock (run it at a commit before that, 0188d73, with this
file copied in). tests/test_server.py checks that `server_time=off` (with unbounded link queues
and no superseding) still gives these tables.

Trained weights round differently on different CPUs (up to 2.2 points of window mIoU between the
Intel Xeon and two AMD EPYC kinds this project has run on), so the file keeps one recording per
CPU seen, and the test accepts a run within the measured cross-CPU rounding of any of them (it
never looks up the machine it runs on). The first two were recorded at 0188d73; the third, on an
AMD EPYC with AVX-512, at a later commit with the server's time off, unbounded queues and no
superseding (it agrees with the first two within those tolerances). A run adds or replaces this
machine's recording, under `cpu_name()`:

    python scripts/server_off_golden.py
"""
from __future__ import annotations

import json
import platform
from dataclasses import replace
from pathlib import Path

from amslib.analysis.runs import simulate
from amslib.core.config import preset, with_overrides

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "server_off_golden.json"

# (name, scheme, overrides): the laptop preset at 64x128 for 24 s, updates every 8 s from 8 s
CASES = [
    ("none", "none", {}),
    ("one_time", "one_time", {"one_time_s": 8.0}),
    ("ams", "ams", {}),
    ("ams_slow_links", "ams", {"uplink_kbps": 100.0, "downlink_kbps": 150.0, "latency_s": 0.1}),
    ("ams_h264", "ams", {"uplink_codec": "h264"}),
    ("jit", "jit", {}),
    ("remote_tracking", "remote_tracking", {"latency_s": 0.05}),
]


def golden_config(scheme: str, overrides: dict):
    base = with_overrides(preset("laptop"), {"height": 64, "max_seconds": 24.0, "first_update_s": 8.0, "ledger_all_encoders": False,
                                             "update_interval_s": 8.0, **overrides})
    return replace(base, scheme=scheme)


def tables(result) -> dict:
    frames, updates = result.frames, result.updates
    keep = [c for c in ("t_update_s", "t_arrival_s", "downlink_bits", "num_samples", "sent") if c in updates]
    return {"window_miou": [round(float(v), 9) for v in result.window_miou()],
            "model_version": frames["model_version"].astype(int).tolist(),
            "uplink_bits": frames["uplink_bits"].astype(int).tolist(),
            "updates": {c: json.loads(updates[c].to_json(orient="values")) for c in keep}}


def cpu_name() -> str:
    """'<vendor> <model name>' from /proc/cpuinfo, with ' (AVX-512)' where it has AVX-512 (the
    processor string elsewhere): a label for a recording, never a key a test looks up."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    avx512 = " (AVX-512)" if "avx512f" in info.get("flags", "").split() else ""
    return f"{info.get('vendor_id', '')} {info.get('model name', '')}".strip() + avx512


def main() -> None:
    golden = json.loads(OUT.read_text()) if OUT.is_file() else {}
    off = {"server_time": "off", "uplink_queue_s": None, "supersede_queued": False}
    golden[cpu_name()] = {name: tables(simulate(golden_config(scheme, {**overrides, **off})))
                          for name, scheme, overrides in CASES}
    OUT.write_text(json.dumps(golden, indent=1, sort_keys=True))
    print(f"wrote {OUT} ({cpu_name()})")


if __name__ == "__main__":
    main()
