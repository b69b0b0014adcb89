"""environment.yml (conda) and pyproject.toml list the same dependencies."""
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _names(specs):
    return {re.split(r"[<>=!~ \[]", s.strip(), maxsplit=1)[0].lower() for s in specs}


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"] + project["optional-dependencies"]["dev"])
    pip_lines = [line.strip()[2:] for line in (ROOT / "environment.yml").read_text().splitlines()
                 if line.startswith("      - ") and not line.strip().startswith("- -e")]
    conda = _names(pip_lines)
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"


def test_environment_pins_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = {s.replace(" ", "") for s in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = (ROOT / "environment.yml").read_text()
    for spec in specs:
        assert f"- {spec}" in env, f"{spec} is pinned differently in environment.yml"


def test_tensorflow_noise_is_filtered_and_everything_else_passes(capfd):
    # oneDNN's line at the first training step on some CPUs is dropped; any other line is kept
    import os

    from amslib.core.tf import quiet_first_call

    def step():
        os.write(2, b"E0000 util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back\n")
        os.write(2, b"a real error\n")
        return 7

    quiet = quiet_first_call(step)
    assert quiet() == 7
    assert capfd.readouterr().err == "a real error\n"
    quiet()  # later calls are not filtered (the noise comes once, at the first)
    assert "oneDNN" in capfd.readouterr().err


def test_the_licence_is_declared_and_every_shipped_asset_has_a_notice():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"  # compatible with the Apache-2.0 and MIT assets
    assert "Apache License" in (root / "LICENSE").read_text()
    notice = (root / "amslib" / "assets" / "NOTICE").read_text()
    for asset in (root / "amslib" / "assets").iterdir():
        ours = asset.name.startswith("student_synthetic_street")  # trained here (`make student`)
        if asset.name != "NOTICE" and not asset.name.startswith("LICENSE-") and not ours:
            assert asset.name.split(".")[0] in notice, f"{asset.name} has no entry in amslib/assets/NOTICE"
