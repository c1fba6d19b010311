"""The seed's comparison: a fully connected network against LeNet-5 on the same digits.

    python launch.py --config experiments/mlp_mnist.py:hidden=2 --workdir runs/mlp2_mnist
    python launch.py --config experiments/mlp_mnist.py:hidden=1,dataset=fashion_mnist \\
        --workdir runs/mlp1_fashion

`hidden=1` is one hidden layer of 300 units, `hidden=2` the 300-100 network of LeCun et al.
(1998); the recipe otherwise matches experiments/lenet5_mnist.py so only the architecture
differs. `dataset` is `mnist_5k` (default) or `fashion_mnist`.
"""

from jaxconv.configs import base, loading

HIDDEN_SIZES = {1: (300,), 2: (300, 100)}
# Pixel mean and standard deviation of each dataset's training split.
STATISTICS = {"mnist_5k": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530)}


def get_config(arg=None):
    options = loading.parse_variant(arg, {"hidden": 2, "dataset": "mnist_5k"})
    if options["hidden"] not in HIDDEN_SIZES or options["dataset"] not in STATISTICS:
        raise loading.ConfigError(
            f"mlp_mnist takes hidden=1|2 and dataset={'|'.join(STATISTICS)}; got {arg}."
        )
    config = base.get_config()
    config.model.name = "mlp"
    config.model.hidden_sizes = HIDDEN_SIZES[options["hidden"]]
    config.data.name = options["dataset"]
    config.data.mean, config.data.std = STATISTICS[options["dataset"]]
    config.data.augment = "translate:2"
    config.batch_size = 64
    config.eval_batch_size = 500
    config.learning_rate = 1e-3
    config.num_epochs = 80.0 if options["dataset"] == "mnist_5k" else 15.0
    config.optimizer.warmup_epochs = config.num_epochs * 0.05
    config.best_metric = "test_accuracy"
    return config
