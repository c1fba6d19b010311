"""Denoising scikit-image photographs with a residual U-Net, compared with BM3D.

    python launch.py --config experiments/unet_denoise.py --workdir runs/unet_denoise
    python launch.py --config experiments/unet_denoise.py:sigma=50 --workdir runs/unet_denoise50
    python launch.py --config experiments/unet_denoise.py:blind=True \\
        --workdir runs/unet_denoise_blind
    python benchmarks/denoise_table.py   # PSNR/SSIM table against BM3D and classical methods

Trained on random 48x48 patches (with flips and rotations) of 14 photographs, evaluated while
training on tiles covering two validation photographs (scikit-learn's china and flower), tested
by benchmarks/denoise_table.py on 4 photographs it never saw (camera, moon, coins, page);
additive Gaussian noise of `sigma` on the 0-255 scale. U-Net with 'same' padding, 3 levels,
base width 32, no batch norm, predicting the noise (residual learning); mean squared error,
Adam with cosine decay. `blind=True` trains one model for every noise level: each training
patch's sigma is drawn uniformly from BLIND_SIGMA_RANGE (DnCNN-B's range), so the network must
judge the noise level itself; validation stays at `sigma`. Pixels are scaled to [0, 1] (mean
0, std 1) so PSNR and SSIM are on the usual scale.
"""

from jaxconv.configs import base, loading

BLIND_SIGMA_RANGE = (0.0, 55.0)


def get_config(arg=None):
    options = loading.parse_variant(
        arg, {"sigma": 25.0, "blind": False, "steps": 20_000, "init": ""}
    )
    config = base.get_config()
    config.task = "denoising"
    config.denoising.predicts_noise = True
    config.model.name = "unet_same"
    config.model.depth = 3
    config.model.width = 32
    config.model.batch_norm = False
    config.data.name = "noisy_patches"
    config.data.patch_size = 48
    config.data.sigma = float(options["sigma"])
    if options["blind"]:
        config.data.sigma_range = BLIND_SIGMA_RANGE
    config.data.num_train_examples = 1_000_000  # random patches: no epoch repeats a window
    config.data.mean, config.data.std = 0.0, 1.0
    config.batch_size = 32
    config.eval_batch_size = 8
    config.learning_rate = 1e-3
    config.optimizer.name = "adam"
    config.optimizer.warmup_epochs = 0.0
    config.num_train_steps = int(options["steps"])
    config.log_every_steps = 50
    config.eval_every_steps = 1000
    config.checkpoint_every_steps = 500
    # Evaluations while training (and the best checkpoint) use photographs that are neither
    # trained on nor in the test table, so no choice made while training sees the test ones.
    config.data.eval_split = "validation"
    config.best_metric = "validation_psnr"
    if options["init"]:
        # Start from another run's weights (the sigma-25 model for sigma 50, say): every
        # layer, the output convolution too, since both runs predict the noise.
        config.transfer.source = f"checkpoint:{options['init']}"
        config.transfer.dont_load = ()
    return config
