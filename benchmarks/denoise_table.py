"""PSNR / SSIM of denoisers on held-out photographs, all on the same noisy images.

    python benchmarks/denoise_table.py [--sigmas 15,25,50] [--json] [--runs runs]
        [--no-self-ensemble]

For each test photograph (camera, moon, coins, page: never seen in training) and noise level,
one noisy image (Gaussian, seeded per image and sigma) is denoised by: scikit-image's non-local
means, total variation and wavelet denoisers, BM3D (the `bm3d` package), and jaxconv's trained
DnCNN and U-Net, each trained for one sigma, and jaxconv's blind U-Net (`unet_blind`), one model
trained for every sigma from 0 to 55 and never told which. jaxconv's models are read from
`runs/dncnn_denoise` and `runs/unet_denoise` (sigma 25), `runs/dncnn_denoise50` and
`runs/unet_denoise50` (sigma 50, and so on: `<method>_denoise<sigma>`) and
`runs/unet_denoise_blind` (every sigma): train them with experiments/dncnn_denoise.py and
experiments/unet_denoise.py (`:blind=True` for the blind one). A model not trained there is read
from benchmarks/trained, where the models behind the README's table are committed; one in
neither is left out of the table (and is null in the JSON). Each network's estimate is the
mean over the image's 8 flips and rotations (the geometric self-ensemble), unless
`--no-self-ensemble`. `--json` prints {sigma: {method: mean PSNR over the photographs}}, every
method of METHODS a key. BM3D and the wavelet denoiser need the `benchmarks` extra:
`pip install -e '.[benchmarks]'`.
"""

import argparse
import importlib.util
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = ("camera", "moon", "coins", "page")
METHODS = ("noisy", "nlm", "tv", "wavelet", "bm3d", "dncnn", "unet", "unet_blind")
NETWORKS = ("dncnn", "unet", "unet_blind")
TRAINED = ROOT / "benchmarks" / "trained"
# Packages of the `benchmarks` extra that the classical rows import: {module: PyPI name}.
CLASSICAL_PACKAGES = {"bm3d": "bm3d", "pywt": "PyWavelets"}


def check_classical_packages() -> None:
    """Exits naming the missing packages before any denoiser runs (they would otherwise fail
    minutes in, after the first photograph's slower methods)."""
    missing = [
        name for module, name in CLASSICAL_PACKAGES.items() if not importlib.util.find_spec(module)
    ]
    if missing:
        sys.exit(
            f"denoise_table needs {' and '.join(missing)} (BM3D and the wavelet denoiser): "
            "pip install -e '.[benchmarks]'"
        )


def noisy_image(clean: np.ndarray, sigma: float, photo_index: int) -> np.ndarray:
    """The clean image in [0, 1] plus N(0, sigma/255), unclipped; one fixed draw per pair."""
    rng = np.random.default_rng([int(sigma), photo_index])
    return clean + rng.normal(0.0, sigma / 255.0, clean.shape)


def classical(method: str, noisy: np.ndarray, sigma: float) -> np.ndarray:
    """The classical denoisers, each given the true noise level where it takes one."""
    from skimage import restoration

    level = sigma / 255.0
    if method == "nlm":
        return restoration.denoise_nl_means(
            noisy, h=0.8 * level, sigma=level, patch_size=7, patch_distance=11, fast_mode=True
        )
    if method == "tv":
        return restoration.denoise_tv_chambolle(noisy, weight=1.2 * level)
    if method == "wavelet":
        return restoration.denoise_wavelet(
            noisy, sigma=level, method="BayesShrink", mode="soft", rescale_sigma=True
        )
    if method == "bm3d":
        import bm3d

        return bm3d.bm3d(noisy, sigma_psd=level)
    raise ValueError(method)


class Network:
    """A trained jaxconv denoiser applied to whole images of any size."""

    def __init__(self, workdir: pathlib.Path):
        import jax

        from jaxconv.workdir import restore

        self.workdir = workdir
        self.config, model, self.variables, _ = restore.load_run(workdir, num_outputs=1)
        unet = "unet" in self.config.model.name
        self.multiple = 2 ** (self.config.model.depth or 0) if unet else 1
        self.apply = jax.jit(lambda variables, x: model.apply(variables, x, train=False))

    def __call__(self, noisy: np.ndarray, self_ensemble: bool = True) -> np.ndarray:
        """The denoised `noisy` (H, W); with `self_ensemble`, the mean of the estimates of its 8
        flips and rotations, each turned back (Timofte et al., 2016: the same network, eight
        views of the image, +0.1-0.2 dB for 8 forward passes)."""
        choices = range(8) if self_ensemble else (0,)
        from jaxconv.data.noisy_patches import dihedral

        estimates = [undo_dihedral(self.denoise(dihedral(noisy, c)), c) for c in choices]
        return np.mean(estimates, axis=0)

    def denoise(self, noisy: np.ndarray) -> np.ndarray:
        height, width = noisy.shape
        # A U-Net halves the image `depth` times: pad (mirrored) to a multiple, crop after.
        pad = [(0, -height % self.multiple), (0, -width % self.multiple)]
        padded = np.pad(noisy, pad, mode="reflect")[None, :, :, None].astype(np.float32)
        output = np.asarray(self.apply(self.variables, padded))[0, :height, :width, 0]
        return noisy - output if self.config.denoising.predicts_noise else output


def undo_dihedral(image: np.ndarray, choice: int) -> np.ndarray:
    """The inverse of `noisy_patches.dihedral(., choice)`."""
    unmirrored = image[:, ::-1] if choice >= 4 else image
    return np.ascontiguousarray(np.rot90(unmirrored, -(choice % 4)))


def run_name(method: str, sigma: float) -> str:
    """The workdir name of `method`'s model for `sigma`: one per sigma, 25's unsuffixed, except
    the blind model, which serves them all."""
    if method == "unet_blind":
        return "unet_denoise_blind"
    return f"{method}_denoise" + ("" if sigma == 25 else f"{sigma:g}")


def networks(runs: pathlib.Path, sigma: float) -> dict:
    """The trained networks for `sigma`: each from `runs` if trained there, else the exported
    model committed in benchmarks/trained (see its README.md)."""
    from jaxconv.workdir import restore

    found = {}
    for method in NETWORKS:
        for folder in (runs, TRAINED):
            workdir = folder / run_name(method, sigma)
            saved = (workdir / "checkpoints").is_dir() or (
                workdir / restore.EXPORTED_VARIABLES
            ).exists()
            if (workdir / "config.json").exists() and saved:
                found[method] = Network(workdir)
                print(f"sigma {sigma:g}, {method}: {workdir}", file=sys.stderr)
                break
        else:
            print(f"sigma {sigma:g}, {method}: no trained model, left out", file=sys.stderr)
    return found


def scores(estimate: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    estimate = np.clip(estimate, 0.0, 1.0)
    return (
        peak_signal_noise_ratio(clean, estimate, data_range=1.0),
        structural_similarity(
            clean,
            estimate,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        ),
    )


def table(sigmas, runs: pathlib.Path, self_ensemble: bool = True) -> dict:
    """{sigma: {method: {photo: (psnr, ssim, seconds)}}}."""
    from jaxconv.data import noisy_patches

    results = {}
    for sigma in sigmas:
        trained = networks(runs, sigma)
        rows = {method: {} for method in METHODS if method not in NETWORKS or method in trained}
        for index, name in enumerate(PHOTOS):
            clean = noisy_patches.photo(name).astype(np.float64) / 255.0
            noisy = noisy_image(clean, sigma, index)
            for method in rows:
                started = time.perf_counter()
                if method == "noisy":
                    estimate = noisy
                elif method in trained:
                    estimate = trained[method](noisy, self_ensemble)
                else:
                    estimate = classical(method, noisy, sigma)
                seconds = time.perf_counter() - started
                rows[method][name] = (*scores(estimate, clean), seconds)
        results[f"{sigma:g}"] = rows
    return results


def json_row(rows: dict) -> dict:
    """{method: mean PSNR} for every method of METHODS, None for a network not trained."""
    return {
        method: float(np.mean([v[0] for v in rows[method].values()])) if method in rows else None
        for method in METHODS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--no-self-ensemble",
        dest="self_ensemble",
        action="store_false",
        help="one forward pass per image instead of the mean over its 8 flips and rotations",
    )
    args = parser.parse_args()
    check_classical_packages()
    results = table(
        [float(s) for s in args.sigmas.split(",")], pathlib.Path(args.runs), args.self_ensemble
    )
    if args.json:
        print(json.dumps({sigma: json_row(rows) for sigma, rows in results.items()}))
        return
    from jaxconv.cpu import platform

    print(f"CPU: {platform.cpu_model()}. PSNR (dB) / SSIM per held-out photograph.")
    for sigma, rows in results.items():
        print(f"\nsigma {sigma}\n| method | " + " | ".join(PHOTOS) + " | mean PSNR | s/image |")
        print("|---|" + "---|" * (len(PHOTOS) + 2))
        for method, photos in rows.items():
            cells = " | ".join(f"{photos[p][0]:.2f} / {photos[p][1]:.3f}" for p in PHOTOS)
            mean = np.mean([photos[p][0] for p in PHOTOS])
            seconds = np.mean([photos[p][2] for p in PHOTOS])
            print(f"| {method} | {cells} | {mean:.2f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
