"""The formulation table: one row per product, a time wherever a formulation applies."""

import importlib.util
import pathlib

from jaxconv.cpu import dnnl

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "formulations", ROOT / "benchmarks" / "conv_formulations.py"
)
formulations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(formulations)


def test_each_product_is_timed_in_the_formulations_that_can_compute_it(monkeypatch, capsys):
    # A 1x1 layer with padding wider than the kernel: no Winograd, and oneDNN's input
    # gradient only from its library (jaxlib's forward call cannot run it).
    layer = ((2, 5, 5, 3), (1, 1, 3, 4), (1, 1), ((1, 2), (2, 1)))
    monkeypatch.setattr(formulations, "LAYERS", {"tiny": layer})
    formulations.main()
    lines = capsys.readouterr().out.splitlines()
    header = [cell.strip() for cell in lines[1].strip("|").split("|")]
    assert header[:3] == ["layer", "product", "xla"] and "onednn" in header
    rows = {}
    for line in lines[3:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[1]] = dict(zip(header[2:], cells[2:], strict=True))
    assert set(rows) == {"forward", "input_grad", "kernel_grad"}
    assert all(float(row["xla"]) > 0 for row in rows.values())
    assert {row["winograd"] for row in rows.values()} == {"–"}
    assert {row["winograd4"] for row in rows.values()} == {"–"}
    library = dnnl.available()
    assert (rows["input_grad"]["onednn"] != "–") == library
    assert (rows["kernel_grad"]["onednn"] != "–") == library
    assert rows["forward"]["swapped"] == "–"
    assert float(rows["kernel_grad"]["swapped"]) > 0
