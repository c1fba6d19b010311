"""The house's dependencies run one way, and the light imports stay light."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jaxconv"
# From the ground up: each part may import only the parts before it (and itself).
LAYERS = (
    "errors",
    "configs",
    "ops",
    "pictures",
    "cpu",
    "layers",
    "models",
    "explain",
    "tasks",
    "data",
    "workdir",
    "detection",
    "transfer",
    "predict",
    "report",
    "train",
)
# Below train by the order, yet never imported by it: training draws no figures.
NEVER = {("train", "report")}


def part_of(module: str) -> str | None:
    """'jaxconv.cpu.planning' -> 'cpu'."""
    parts = module.split(".")
    return parts[1] if parts[0] == "jaxconv" and len(parts) > 1 else None


def imports_of(path: pathlib.Path) -> set[str]:
    """Every jaxconv module `path` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {name for name in found if name.startswith("jaxconv.")}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        yield path, part_of(".".join(relative.parts))


def test_every_part_of_the_package_has_a_place_in_the_order():
    assert {part for _, part in modules() if part not in (None, "__init__")} == set(LAYERS)


@pytest.mark.parametrize("path, part", list(modules()), ids=lambda value: str(value))
def test_imports_point_down_only(path, part):
    if part in (None, "__init__"):
        return
    for name in imports_of(path):
        target = part_of(name)
        if target is None or target == part or target not in LAYERS:
            continue
        assert LAYERS.index(target) < LAYERS.index(part), f"{path.name} imports {name}"
        assert (part, target) not in NEVER, f"{path.name} imports {name}"


@pytest.mark.parametrize(
    "module, absent",
    [
        ("jaxconv.configs.base", ("orbax", "grain", "flax", "jaxconv.train", "jaxconv.models")),
        ("jaxconv.models", ("jaxconv.cpu.dnnl", "jaxconv.cpu.onednn", "orbax", "grain")),
        ("jaxconv.ops", ("flax", "jaxconv.cpu", "jaxconv.layers")),
    ],
)
def test_light_imports_load_nothing_heavy(module, absent):
    code = (
        f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith({absent!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
