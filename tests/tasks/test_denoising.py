"""Denoising's PSNR and SSIM, against scikit-image."""

import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jaxconv.tasks import denoising


def test_psnr_and_ssim_match_scikit_image():
    rng = np.random.default_rng(1)
    clean = rng.random((2, 24, 20, 1)).astype(np.float32)
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    psnr = np.asarray(denoising.psnr(jnp.asarray(noisy), jnp.asarray(clean)))
    ssim = np.asarray(denoising.ssim(jnp.asarray(noisy), jnp.asarray(clean)))
    for index in range(2):
        assert psnr[index] == pytest.approx(
            peak_signal_noise_ratio(clean[index], noisy[index], data_range=1.0), abs=1e-3
        )
        reference = structural_similarity(
            clean[index, ..., 0],
            noisy[index, ..., 0],
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ssim[index] == pytest.approx(reference, abs=2e-3)


def test_psnr_of_a_known_pair():
    clean = jnp.zeros((1, 4, 4, 1))
    estimate = clean.at[0, 0, 0, 0].set(0.4)  # MSE = 0.16 / 16 = 0.01 -> 20 dB
    assert float(denoising.psnr(estimate, clean)[0]) == pytest.approx(20.0, abs=1e-4)


def test_denoising_estimate_subtracts_predicted_noise():
    noisy = jnp.full((1, 3, 3, 1), 0.7)
    batch = {"image": noisy, "target": jnp.full((1, 3, 3, 1), 0.5)}
    noise = jnp.full((1, 3, 3, 1), 0.2)
    loss, _ = denoising.loss_and_metrics(noise, batch, predicts_noise=True)
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    loss, _ = denoising.loss_and_metrics(noisy, batch, predicts_noise=False)
    assert float(loss) == pytest.approx(0.04, rel=1e-5)
