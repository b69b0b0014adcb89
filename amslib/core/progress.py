"""Progress bars for long steps (downloads, labelling), in a terminal and in a notebook.

Library code reports progress through a plain callback (STYLE.md, principle 6); this module
turns such a callback into a tqdm bar. `tqdm.auto` draws a widget in Jupyter and text in a
terminal, so the CLI and the notebooks share one implementation.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(desc: str, *, unit: str = "it", total: float | None = None,
                 scale: bool = False) -> Iterator[Callable[[float, float | None], None]]:
    """A callback `update(done, total)` that moves a tqdm bar to `done` (absolute, not a
    step); the bar closes when the block ends. `scale`: show bytes as kB/MB. The bar appears
    at the first update, so a step that fails before starting prints only its error."""
    from tqdm.auto import tqdm  # deferred: tqdm.auto probes for Jupyter and ipywidgets on import

    bars = []

    def update(done: float, new_total: float | None = None) -> None:
        if not bars:
            bars.append(tqdm(total=new_total or total, desc=desc, unit=unit, unit_scale=scale,
                             leave=True, dynamic_ncols=True))
        bar = bars[0]
        if new_total is not None and new_total != bar.total:
            bar.total = new_total
        bar.update(done - bar.n)
    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
