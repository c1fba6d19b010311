"""Image restoration from additive noise: noisy `image` in, clean `target` out.

With `predicts_noise` (residual learning, as DnCNN does) the model outputs the noise and the
estimate is `image - output`; otherwise the output is the estimate itself. Loss: mean squared
error. Metrics, per image and then averaged over images: PSNR and SSIM on the [0, 1] scale, so
the data must be normalised with mean 0 and std 1 (pixels / 255).
"""

import jax
import jax.numpy as jnp

# SSIM as Wang, Bovik, Sheikh and Simoncelli (2004) define it: an 11x11 Gaussian window of
# sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1.
_SSIM_SIZE, _SSIM_SIGMA, _K1, _K2 = 11, 1.5, 0.01, 0.03


def estimate(outputs: jnp.ndarray, batch: dict, predicts_noise: bool) -> jnp.ndarray:
    outputs = outputs.astype(jnp.float32)
    return batch["image"] - outputs if predicts_noise else outputs


def psnr(estimate: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Peak signal-to-noise ratio in dB of each image (N, H, W, C), data range 1."""
    mse = jnp.mean((estimate - target) ** 2, axis=(1, 2, 3))
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-12))


def _gaussian_window() -> jnp.ndarray:
    offsets = jnp.arange(_SSIM_SIZE, dtype=jnp.float32) - (_SSIM_SIZE - 1) / 2
    line = jnp.exp(-(offsets**2) / (2 * _SSIM_SIGMA**2))
    line = line / line.sum()
    return jnp.outer(line, line)


def ssim(estimate: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Mean structural similarity of each image (N, H, W, C), channels averaged; statistics
    over 'valid' Gaussian windows, as `skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`."""
    channels = estimate.shape[-1]
    window = jnp.tile(_gaussian_window()[:, :, None, None], (1, 1, 1, channels))

    def blur(x):
        return jax.lax.conv_general_dilated(
            x,
            window,
            (1, 1),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=channels,
        )

    mean_x, mean_y = blur(estimate), blur(target)
    var_x = blur(estimate * estimate) - mean_x**2
    var_y = blur(target * target) - mean_y**2
    covariance = blur(estimate * target) - mean_x * mean_y
    c1, c2 = _K1**2, _K2**2
    index = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.mean(axis=(1, 2, 3))


def loss_and_metrics(
    outputs: jnp.ndarray, batch: dict, *, predicts_noise: bool = True
) -> tuple[jnp.ndarray, dict]:
    restored = estimate(outputs, batch, predicts_noise)
    target = batch["target"]
    mask = batch.get("mask", jnp.ones(target.shape[:1], jnp.float32))
    errors = jnp.mean((restored - target) ** 2, axis=(1, 2, 3))
    count = mask.sum()
    loss = (errors * mask).sum() / jnp.maximum(count, 1.0)
    metrics = {
        "loss": ((errors * mask).sum(), count),
        "psnr": ((psnr(restored, target) * mask).sum(), count),
        "ssim": ((ssim(restored, target) * mask).sum(), count),
    }
    return loss, metrics
