"""Where a `laptop` AMS run's wall time goes (the same measurement `amslib bench` makes):
prints the breakdown and writes docs/sim_overhead.json.

    python scripts/sim_overhead.py [--seconds 120]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from amslib.analysis.bench import machine_info, sim_overhead
from amslib.core.config import preset, with_overrides
from amslib.core.files import write_json

OUT = Path(__file__).resolve().parents[1] / "docs" / "sim_overhead.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    config = with_overrides(preset("laptop"), {"scheme": "ams", "max_seconds": args.seconds, "first_update_s": 10.0})
    result = sim_overhead(config)
    result["machine"] = machine_info()
    result["load_average_1min"] = os.getloadavg()[0]
    print(result)
    write_json(OUT, result)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
