"""Figures and the HTML report of a run, and comparisons between runs.

    report.build("runs/lenet5_mnist")               # -> runs/lenet5_mnist/report/index.html
    report.compare(["runs/resnet56", "runs/plain56"], "runs/compare")

A run is a training workdir or a folder that `launch.py export` wrote. Plotting needs
matplotlib, imported only when a report is drawn.
"""

import pathlib

__all__ = ["build", "compare"]


def build(workdir: str | pathlib.Path, *, max_examples: int = 1000) -> pathlib.Path:
    """Writes `workdir/report/index.html` and its PNGs; returns the index's path.

    See `jaxconv.report.run.build`.
    """
    from jaxconv.report import run

    return run.build(workdir, max_examples=max_examples)


def compare(workdirs, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Writes a plot and a table comparing runs into `out_dir`; returns the HTML page's path.

    See `jaxconv.report.comparison.compare`.
    """
    from jaxconv.report import comparison

    return comparison.compare(workdirs, out_dir)
