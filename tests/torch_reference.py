"""torch and torchvision as test references: imported, or the test skipped saying why."""

import sys

import pytest


def torch_and_torchvision(*, allow_module_level: bool = False):
    """(torch, torchvision). A CUDA torchvision beside torch's CPU build lacks two operators
    its import checks (DATA.md): they are declared, then the import is tried again."""
    torch = pytest.importorskip("torch")
    try:
        import torchvision
    except Exception:  # noqa: BLE001 - the missing operators, or another incompatibility
        for name in [name for name in sys.modules if name.startswith("torchvision")]:
            del sys.modules[name]
        try:
            library = torch.library.Library("torchvision", "DEF")
            for operator in ("nms", "qnms"):
                library.define(
                    f"{operator}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
                )
        except RuntimeError:
            pass  # already declared by an earlier import
    try:
        import torchvision
    except Exception as error:  # an incompatible build fails in its own ways
        pytest.skip(f"torchvision does not import: {error}", allow_module_level=allow_module_level)
    return torch, torchvision
