"""The ResNet paper's degradation experiment on Fashion-MNIST: residual against plain.

    python launch.py --config experiments/resnet_fashion.py:depth=20 --workdir runs/resnet20
    python launch.py --config experiments/resnet_fashion.py:depth=20,plain=True \\
        --workdir runs/plain20
    python launch.py --config experiments/resnet_fashion.py:depth=56,plain=True \\
        --workdir runs/plain56

CIFAR-style ResNets of He et al. (2016), 3 stages of 16/32/64 channels, `depth` in
20/32/44/56/110; `plain=True` removes every skip connection and keeps every layer. The paper's
recipe, shortened: SGD with momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1
divided by 10 at 50% and 75% of training, random translation by up to 2 pixels. The deep plain
network's training loss stays above the shallow one's; the residual one's does not
(compare with `python launch.py compare runs/plain20 runs/plain56 runs/resnet56`).
Needs the full Fashion-MNIST (`apt-get install dataset-fashion-mnist`, or TFDS online).
"""

from jaxconv.configs import base, loading

DEPTHS = (20, 32, 44, 56, 110)


def get_config(arg=None):
    options = loading.parse_variant(arg, {"depth": 20, "plain": False, "epochs": 20.0})
    if options["depth"] not in DEPTHS:
        raise loading.ConfigError(f"depth must be one of {DEPTHS}, got {options['depth']}.")
    config = base.get_config()
    config.model.name = f"{'plain' if options['plain'] else 'resnet'}{options['depth']}"
    config.data.name = "fashion_mnist"
    config.data.mean, config.data.std = 0.2860, 0.3530
    config.data.augment = "translate:2"
    config.batch_size = 128
    config.eval_batch_size = 500
    config.num_epochs = float(options["epochs"])
    config.learning_rate = 0.1
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 1e-4
    config.optimizer.schedule = "step"
    config.optimizer.step_epochs = (0.5 * options["epochs"], 0.75 * options["epochs"])
    config.optimizer.warmup_epochs = 0.0
    config.log_every_steps = 50
    config.checkpoint_every_steps = 1000
    config.best_metric = "test_accuracy"
    return config
