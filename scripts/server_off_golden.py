"""Writes tests/data/server_off_golden.json: small runs of every remote scheme, recorded
before the server's time went on the clock. tests/test_server.py checks that
`server_time=off` (with unbounded link queues and no superseding) still gives these tables.

    python scripts/server_off_golden.py
"""
from __future__ import annotations

import json
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


def main() -> None:
    golden = {name: tables(simulate(golden_config(scheme, overrides))) for name, scheme, overrides in CASES}
    OUT.write_text(json.dumps(golden, indent=1, sort_keys=True))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
