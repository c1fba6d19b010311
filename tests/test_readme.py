"""The README's library example runs as written and gives what its comments say."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def library_example() -> str:
    section = README.read_text().split("## Using it as a library", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_library_example_runs_and_its_comments_hold(capsys):
    namespace = {}
    exec(compile(library_example(), str(README), "exec"), namespace)
    np.testing.assert_array_equal(namespace["peaks"].coordinates, [[22, 42]])
    assert namespace["logits"].shape == (8, 10)
    # The CIFAR-style ResNet-18's published count (as in the common PyTorch CIFAR code).
    assert "11,173,962 parameters" in capsys.readouterr().out
