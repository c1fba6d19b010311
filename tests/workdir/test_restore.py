"""An exported run holds the trained variables (rounded to float16 by default), no optimizer
state, and loads as its workdir does."""

import jax
import numpy as np
import pytest

from jaxconv import transfer
from jaxconv.train import loop
from jaxconv.workdir import export, restore
from jaxconv.workdir.checkpoint import read_state


@pytest.fixture
def trained(tmp_path, digits_config):
    loop.run(digits_config(4), tmp_path / "run")
    return tmp_path / "run"


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("dtype, rtol", [("float16", 1e-3), ("float32", 0)])
def test_export_keeps_the_evaluation_variables(trained, tmp_path, dtype, rtol):
    path = export.export_run(trained, tmp_path / "model", dtype=dtype)
    saved = read_state(trained)
    _, model, exported, _ = restore.load_run(tmp_path / "model", num_outputs=10)
    assert set(exported) == {"params"}  # no optimizer state travels
    for got, want in zip(leaves(exported["params"]), leaves(saved["params"]), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7 if rtol else 0)
    images = np.random.default_rng(0).random((3, 8, 8, 1), np.float32)
    original = restore.load_run(trained, num_outputs=10).variables
    np.testing.assert_allclose(
        model.apply(exported, images, train=False),
        model.apply(original, images, train=False),
        rtol=10 * rtol,
        atol=1e-3 if rtol else 1e-6,
    )
    float32_bytes = sum(x.nbytes for x in leaves(saved["params"]))
    assert path.stat().st_size < (0.6 if dtype == "float16" else 1.1) * float32_bytes


def test_an_export_is_a_transfer_source(trained, tmp_path):
    """'checkpoint:<folder>' reads an exported model as it reads the run's newest checkpoint
    (to within the float16 rounding), so a committed model can start another run."""
    export.export_run(trained, tmp_path / "model")
    from_export = transfer.load(f"checkpoint:{tmp_path / 'model'}", "lenet5")
    from_run = transfer.load(f"checkpoint:{trained}", "lenet5")
    assert jax.tree.structure(from_export) == jax.tree.structure(from_run)
    for got, want in zip(leaves(from_export), leaves(from_run), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)


def test_a_damaged_export_is_reported(trained, tmp_path):
    path = export.export_run(trained, tmp_path / "model")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="not an exported jaxconv model"):
        restore.load_run(tmp_path / "model", num_outputs=10)


def test_export_of_a_folder_that_is_no_run_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="jaxconv run's workdir"):
        export.export_run(tmp_path, tmp_path / "model")


def test_reading_a_checkpoint_logs_no_warning(trained, caplog):
    # The step's metadata file lies beside the item folder, not in it: reading the item must
    # not go looking for it there (orbax warned "Metadata file does not exist" on every read).
    with caplog.at_level("WARNING"):
        state = read_state(trained)
    assert int(state["step"]) == 4
    assert not [record.getMessage() for record in caplog.records if record.levelno >= 30]
