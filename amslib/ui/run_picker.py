"""Pick saved runs from a list and overlay them: their trailing-window mIoU and bandwidth
curves (`plots.timeline_figure`) and their summary table (`results.comparison_table`).

    table = list_runs("runs")
    picker = RunPicker(table)
    display(picker.widget)     # pick with ctrl/shift-click; the figure and table follow
    picker.figure(); picker.summary()   # the same, as plain outputs
"""
from __future__ import annotations

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from amslib.analysis.plots import timeline_figure
from amslib.analysis.results import RunResult, comparison_table
from amslib.analysis.saved_runs import load_run
from amslib.ui.widgets import error_text, guarded


class RunPicker:
    """A `SelectMultiple` over the rows of a `saved_runs.list_runs` table (by `run`); each
    change of the selection loads the runs not loaded yet and redraws the overlay below it.
    `selected`: how many of the first rows start selected. All state is here; callback
    errors go to the `log` Output."""

    def __init__(self, table: pd.DataFrame, *, selected: int = 2) -> None:
        if table.empty:
            raise ValueError("no runs to pick from: list_runs found none (save runs first)")
        self.paths = dict(zip(table["run"], table["path"]))
        self._loaded: dict[str, RunResult] = {}
        runs = list(self.paths)
        self.select = widgets.SelectMultiple(options=runs, value=tuple(runs[:selected]), rows=min(10, len(runs)),
                                             description="runs", layout=widgets.Layout(width="95%"))
        self.view, self.log = widgets.Output(), widgets.Output()
        self.select.observe(guarded(lambda _: self.draw(), self.show_error), names="value")
        self.widget = widgets.VBox([self.select, self.view, self.log])
        self.draw()

    def results(self) -> dict[str, RunResult]:
        """The selected runs, by `run`, loaded once each."""
        for run in self.select.value:
            if run not in self._loaded:
                self._loaded[run] = load_run(self.paths[run])
        return {run: self._loaded[run] for run in self.select.value}

    def figure(self) -> go.Figure:
        """The selected runs' mIoU (%) and average Kbps so far, over video time."""
        return timeline_figure(self.results())

    def summary(self) -> pd.DataFrame:
        """The selected runs' summary numbers, one row each (mIoU in %, Kbps)."""
        return comparison_table(self.results())

    def draw(self) -> None:
        """Redraw the overlay of the selected runs (a hint when none is)."""
        self.view.clear_output(wait=True)
        with self.view:
            if not self.select.value:
                print("pick one or more runs above (ctrl- or shift-click)")
                return
            display(self.figure(), self.summary().round(1))

    def show_error(self, err: BaseException) -> None:
        self.log.append_stderr(error_text(err, brief=(ValueError, FileNotFoundError)))
