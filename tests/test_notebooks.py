"""Every notebook in notebooks/ runs end to end on a fresh kernel, made small through its
`parameters` cell (the papermill convention, done here with nbclient alone)."""
import ast
import copy
import re
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


# The stderr a notebook may show: ours alone (issue #24). That is amslib's own one-line
# warnings (its loggers, `amslib.cache` and `amslib.teachers`, print the message alone: a cache
# that recomputed something damaged, RVM's weights being fetched) and tqdm's progress text. Any
# other line (TensorFlow, oneDNN, absl, TFLite, ffmpeg, a library's warning) is foreign.
OUR_STDERR = re.compile(r"^\s*$|^(frame cache|run cache|label cache|server times|real:drift in|fetching RVM's weights)\b"
                        r"|\d+%\|.*\|")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def foreign_stderr(nb: nbformat.NotebookNode) -> list[str]:
    """The stderr lines of an executed notebook that are not ours (`OUR_STDERR`)."""
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.get("name") == "stderr")
    return [line for line in re.split(r"[\r\n]+", text) if not OUR_STDERR.search(line)]


def test_foreign_stderr_is_told_from_ours():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=(
            "frame cache: /tmp/x is damaged (cut short or the wrong shape): filled anew\n"
            "ams: 100%|##########| 600/600 [00:10<00:00, 60.0frame/s]\r\n"
            "E0000 00:00:1 util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512.\n"
            "The frame size for reading (256, 128) is different from the source frame size (176, 144).\n")),
        nbformat.v4.new_output("stream", name="stdout", text="INFO: printed, not an error\n")])])
    assert foreign_stderr(nb) == [
        "E0000 00:00:1 util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512.",
        "The frame size for reading (256, 128) is different from the source frame size (176, 144)."]


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
def test_notebook_opens_without_asking_or_changing(path):
    """A kernel in the metadata (else JupyterLab asks to select one first), the language_info
    the kernel reports, nbformat 4.5 with an id on every cell, and the file as JupyterLab
    writes it (indent 1, sorted keys): opened unmodified, it stays unmodified (issue #24)."""
    text = path.read_text()
    nb = nbformat.reads(text, as_version=4)
    assert nb.metadata.get("kernelspec") == KERNELSPEC, f"{path.name}: kernelspec must be {KERNELSPEC}"
    info = nb.metadata.get("language_info", {})
    assert info.get("name") == "python" and info.get("pygments_lexer") == "ipython3" and info.get("version"), \
        f"{path.name}: language_info must be the ipykernel's (name, version, pygments_lexer, ...)"
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5), f"{path.name}: save it as nbformat 4.5"
    ids = [c.get("id") for c in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: every cell needs its own id"
    assert text == nbformat.writes(nb) + "\n", f"{path.name}: not as JupyterLab would save it"


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
    # TensorFlow's start-up log (absl, oneDNN), TFLite's, ffmpeg's: a red block a newcomer
    # reads as an error (amslib.core.quiet hides them at their source)
    foreign = foreign_stderr(executed)
    assert not foreign, f"stderr lines that are not amslib's: {foreign[:5]}"
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
                   for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert EXPECTED.get(path.name, "") in text
