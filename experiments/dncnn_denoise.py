"""Denoising with DnCNN (Zhang et al., 2017): 17 layers of 3x3 convolutions, 64 channels,
batch norm, predicting the noise. Same data and noise as experiments/unet_denoise.py.

    python launch.py --config experiments/dncnn_denoise.py --workdir runs/dncnn_denoise
    python launch.py --config experiments/dncnn_denoise.py:sigma=50 --workdir runs/dncnn_denoise50

The paper's recipe (40x40 patches, batch 128, Adam 1e-3 decaying) scaled to a CPU budget: the
committed model behind the denoising table is `:steps=1500` (48 minutes on two cores), and the
sigma-50 one continues it (`init=` reads a workdir or an exported folder):

    python launch.py --workdir runs/dncnn_denoise50 --config.eval_every_steps=500 --config \
        experiments/dncnn_denoise.py:sigma=50,init=benchmarks/trained/dncnn_denoise,steps=500

(see benchmarks/trained/README.md for both).
"""

from jaxconv.configs import base, loading


def get_config(arg=None):
    options = loading.parse_variant(arg, {"sigma": 25.0, "steps": 20_000, "init": ""})
    config = base.get_config()
    config.task = "denoising"
    config.denoising.predicts_noise = True
    config.model.name = "dncnn"
    config.data.name = "noisy_patches"
    config.data.patch_size = 40
    config.data.sigma = float(options["sigma"])
    config.data.num_train_examples = 1_000_000
    config.data.mean, config.data.std = 0.0, 1.0
    config.batch_size = 32
    config.eval_batch_size = 8
    config.learning_rate = 1e-3
    config.optimizer.name = "adam"
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
