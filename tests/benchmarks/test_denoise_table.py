"""The denoising table: its geometric self-ensemble, the trained models it finds, its JSON."""

import importlib.util
import pathlib
import shutil

import numpy as np
import pytest
from scipy import ndimage

from jaxconv.data.noisy_patches import dihedral

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "denoise_table", ROOT / "benchmarks" / "denoise_table.py"
)
denoise_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(denoise_table)


def network(denoise):
    """A table network whose forward pass is `denoise` (no trained model needed)."""
    stub = object.__new__(denoise_table.Network)
    stub.denoise = denoise
    return stub


@pytest.mark.parametrize("choice", range(8))
def test_undo_dihedral_inverts_each_view_of_a_non_square_image(choice):
    image = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(
        denoise_table.undo_dihedral(dihedral(image, choice), choice), image
    )


def test_self_ensemble_of_an_equivariant_filter_is_the_filter():
    image = np.random.default_rng(0).normal(size=(6, 9))
    box = network(lambda x: ndimage.uniform_filter(x, 3, mode="reflect"))
    np.testing.assert_allclose(box(image), ndimage.uniform_filter(image, 3, mode="reflect"))


def test_self_ensemble_averages_a_shift_over_the_four_directions():
    # A one-pixel shift to the right, seen in the 8 views, is a shift in each of the four
    # directions of the original image, twice each.
    image = np.random.default_rng(1).normal(size=(5, 7))
    shifted = network(lambda x: np.roll(x, 1, axis=1))
    expected = sum(np.roll(image, s, axis=a) for s in (1, -1) for a in (0, 1)) / 4
    np.testing.assert_allclose(shifted(image), expected)
    np.testing.assert_array_equal(shifted(image, self_ensemble=False), np.roll(image, 1, axis=1))


@pytest.mark.parametrize(
    "folder", sorted(p.name for p in denoise_table.TRAINED.iterdir() if p.is_dir())
)
def test_each_committed_model_denoises_a_photograph_it_never_saw(folder):
    # A crop of `coins`, a test photograph, at the model's own sigma: every committed model must
    # load from its float16 export and clean far beyond the noisy input (the README's tables
    # show 4-20 dB per whole photograph).
    from jaxconv.data import noisy_patches

    # A blind model is held to it at the low and high sigmas of the table as well, to 3 dB at
    # sigma 15, where there is less noise to take away (the blind model: 4.2 dB on this crop).
    network_ = denoise_table.Network(denoise_table.TRAINED / folder)
    data = network_.config.data
    sigmas = (15.0, data.sigma, 50.0) if data.sigma_range else (data.sigma,)
    clean = noisy_patches.photo("coins")[100:196, 150:246].astype(np.float64) / 255.0
    for sigma in sigmas:
        noisy = denoise_table.noisy_image(clean, sigma, 2)
        noisy_psnr, _ = denoise_table.scores(noisy, clean)
        denoised_psnr, _ = denoise_table.scores(network_(noisy, self_ensemble=False), clean)
        gain = 3.0 if sigma < 20 else 5.0
        assert denoised_psnr > noisy_psnr + gain, (folder, sigma, noisy_psnr, denoised_psnr)


@pytest.mark.parametrize(
    "method, sigma, name",
    [
        ("unet", 25, "unet_denoise"),
        ("dncnn", 50, "dncnn_denoise50"),
        ("unet", 15, "unet_denoise15"),
        ("unet", 12.5, "unet_denoise12.5"),
        ("unet_blind", 15, "unet_denoise_blind"),
        ("unet_blind", 50, "unet_denoise_blind"),
    ],
)
def test_each_sigma_has_its_own_run_but_the_blind_model_serves_all(method, sigma, name):
    assert denoise_table.run_name(method, sigma) == name


def test_a_model_trained_in_runs_is_used_and_a_missing_one_left_out(tmp_path, monkeypatch):
    committed = denoise_table.TRAINED / "unet_denoise"
    runs = tmp_path / "runs"
    shutil.copytree(committed, runs / "unet_denoise15")
    monkeypatch.setattr(denoise_table, "TRAINED", tmp_path / "nothing_committed")
    found = denoise_table.networks(runs, 15.0)
    assert list(found) == ["unet"]
    assert found["unet"].workdir == runs / "unet_denoise15"


def test_json_row_names_every_method_and_nulls_an_untrained_network():
    rows = {
        method: {"camera": (20.0, 0.5, 0.1), "page": (23.0, 0.6, 0.1)}
        for method in denoise_table.METHODS
        if method != "dncnn"
    }
    row = denoise_table.json_row(rows)
    assert list(row) == list(denoise_table.METHODS)
    assert row["dncnn"] is None
    assert row["unet"] == pytest.approx(21.5)


def test_missing_classical_packages_are_named_with_the_install_command(monkeypatch):
    monkeypatch.setattr(
        denoise_table,
        "CLASSICAL_PACKAGES",
        {"numpy": "numpy", "no_such_module_xyz": "NoSuchPackage", "also_missing_xyz": "Other"},
    )
    with pytest.raises(SystemExit) as exit_:
        denoise_table.check_classical_packages()
    message = str(exit_.value)
    assert "NoSuchPackage and Other" in message and "numpy" not in message
    assert "pip install -e '.[benchmarks]'" in message


def test_table_keys_each_sigma_as_written_and_skips_untrained_networks(tmp_path, monkeypatch):
    # The classical denoisers are replaced by the identity and no network is trained: the table's
    # bookkeeping alone, on one small photograph.
    monkeypatch.setattr(denoise_table, "PHOTOS", ("coins",))
    monkeypatch.setattr(denoise_table, "TRAINED", tmp_path / "nothing_committed")
    monkeypatch.setattr(denoise_table, "classical", lambda method, noisy, sigma: noisy)
    results = denoise_table.table([12.5, 25.0], tmp_path / "runs")
    assert list(results) == ["12.5", "25"]
    for rows in results.values():
        assert list(rows) == [m for m in denoise_table.METHODS if m not in denoise_table.NETWORKS]
    # Each sigma's own noise: doubling it costs the noisy image 20 log10(2) = 6.02 dB of PSNR
    # (a little less, as pixels pushed past 0 or 1 are clipped before scoring).
    drop = results["12.5"]["noisy"]["coins"][0] - results["25"]["noisy"]["coins"][0]
    assert 5.6 < drop < 6.03, drop
