"""Every notebook in notebooks/ runs end to end on a fresh kernel, made small through its
`parameters` cell (the papermill convention, done here with nbclient alone)."""
import ast
import copy
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# Small values for the parameter names the notebooks share; each notebook receives those its
# parameters cell declares. "student" is filled in by the fixture below.
SMALL = {"max_seconds": 40, "height": 64, "iterations": 2, "autorun": True, "change_at_update": 1}
PER_NOTEBOOK = {"01_dataset_check.ipynb": {"samples": 8, "thumbnails": 4, "compare_seconds": 2},  # by notebook file name
                "03_live_adaptation.ipynb": {"new_fraction": 0.05},
                "04_compare_policies.ipynb": {"experiment": "encoders", "workers": 1,
                                         "axes": {"update_encoder": ("original", "sparse_q8")}},
                "05_how_ams_works.ipynb": {"t_update_s": 20.0, "horizon_s": 10.0},
                "06_real_clip.ipynb": {"pretrain_steps": 5, "samples": 16, "max_seconds": 14},
                "07_server_capacity.ipynb": {"devices": 2, "max_seconds": 30, "height": 64, "update_interval_s": 5.0,
                                             "sweep_devices": (1, 2), "sweep_schedulers": ("fifo",), "workers": 1},
                "08_saved_runs.ipynb": {"max_seconds": 30}}
# Text that must appear in a notebook's outputs: 00's comparison table; 01 finds road the
# largest class of the street's labels (and compares two teachers, found_pct); 02 jumps to the first update's arrival; 03's ledger
# records the mid-run change; 05's size table names every encoder; 06's per-class table names
# the cut into vtest at 10 s; 08 lists and overlays the two example runs it made (fraction 0.05 and 0.2).
EXPECTED = {"00_quickstart.ipynb": "miou_window", "01_dataset_check.ipynb": "most frequent class: road",
            "02_frame_explorer.ipynb": "(update 1 arrived)",
            "03_live_adaptation.ipynb": "fraction=0.05", "04_compare_policies.ipynb": "sparse_q8",
            "05_how_ams_works.ipynb": "sparse_q8",
            "06_real_clip.ipynb": "vtest", "07_server_capacity.ipynb": "GPU utilisation",
            "08_saved_runs.ipynb": "fraction=0.2"}


def parameters_index(nb: nbformat.NotebookNode) -> int:
    """Index of the cell tagged `parameters`; every notebook must have one (STYLE.md, 7)."""
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return i
    raise ValueError("the notebook has no cell tagged 'parameters'; tag the cell of its knobs")


def declared_names(nb: nbformat.NotebookNode) -> set[str]:
    """The names the parameters cell assigns."""
    tree = ast.parse(nb.cells[parameters_index(nb)].source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)}


def with_parameters(nb: nbformat.NotebookNode, params: dict) -> nbformat.NotebookNode:
    """A copy of `nb` with a cell assigning `params` right after its parameters cell."""
    out = copy.deepcopy(nb)
    source = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    out.cells.insert(parameters_index(nb) + 1, cell)
    return out


@pytest.fixture(scope="module")
def small_student(tmp_path_factory) -> str:
    """An untrained student of the laptop preset's architecture: it loads at any height, and
    the notebooks then do not depend on the shipped default being built."""
    from amslib.core.config import preset
    from amslib.models.student import StudentSpec, build_student

    laptop = preset("laptop")
    spec = StudentSpec(height=64, width=128, width_multiplier=laptop.width_multiplier,
                       output_stride=laptop.output_stride, head_channels=laptop.head_channels)
    path = tmp_path_factory.mktemp("nb-student") / "student.weights.h5"
    build_student(spec).save_weights(path)
    return str(path)


def test_with_parameters_inserts_after_the_tagged_cell():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import math"),
        nbformat.v4.new_code_cell("a = 1\nb = 'x'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(a, b)")])
    out = with_parameters(nb, {"a": 2, "b": "y"})
    assert [c.source for c in out.cells] == [
        "import math", "a = 1\nb = 'x'", "# Injected parameters\na = 2\nb = 'y'", "print(a, b)"]
    assert len(nb.cells) == 3 and declared_names(nb) == {"a", "b"}
    with pytest.raises(ValueError, match="parameters"):
        with_parameters(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")]), {})


def test_there_are_notebooks():
    assert any(p.name == "03_live_adaptation.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), \
        f"{path.name} has outputs: clear them before committing (Kernel > Restart and clear outputs)"
    parameters_index(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, small_student, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    values = {**SMALL, "student": small_student, **PER_NOTEBOOK.get(path.name, {})}
    params = {k: v for k, v in values.items() if k in declared_names(nb)}
    client = NotebookClient(with_parameters(nb, params), timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    executed = client.execute()  # raises CellExecutionError, with the traceback, on any error
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    # TensorFlow's start-up log (absl, oneDNN) reads as an error to a newcomer: amslib.core.tf hides it
    stderr = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
                     if o.output_type == "stream" and o.get("name") == "stderr")
    assert "InitializeLog" not in stderr and "oneDNN custom operations" not in stderr, stderr[:500]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
                   for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert EXPECTED.get(path.name, "") in text
