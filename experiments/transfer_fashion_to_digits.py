"""Transfer learning: a ResNet-20 pretrained on Fashion-MNIST, moved to handwritten digits with
few labels.

First pretrain (about 10 epochs of the full Fashion-MNIST):

    python launch.py --config experiments/resnet_fashion.py:depth=20,epochs=10 \\
        --workdir runs/resnet20_fashion

then, for each labelled budget (10, 100 or 1000 training digits per class of the mnist_5k
set; it holds about 400 per class, so 1000 means all 4,000) and each mode:

    python launch.py --config experiments/transfer_fashion_to_digits.py:budget=10,mode=head \\
        --workdir runs/transfer_10_head

- `scratch`: every layer trained from a random start;
- `head`: the pretrained backbone frozen (inference-mode batch norm), a new 10-way head trained
  (Adam at 1e-2);
- `finetune`: the head first, then every layer at a 10x lower learning rate (1e-3, that of
  `scratch`).

`python benchmarks/transfer_table.py` runs all nine and prints the test-accuracy table. Each
run trains for the same number of steps whatever its budget.
"""

from jaxconv.configs import base, loading

MODES = ("scratch", "head", "finetune")


def get_config(arg=None):
    options = loading.parse_variant(
        arg, {"budget": 100, "mode": "head", "pretrained": "runs/resnet20_fashion", "steps": 400}
    )
    if options["mode"] not in MODES:
        raise loading.ConfigError(f"mode must be one of {', '.join(MODES)}.")
    config = base.get_config()
    config.model.name = "resnet20"
    config.data.name = "mnist_5k"
    config.data.examples_per_class = int(options["budget"])
    config.data.augment = "translate:2"
    # Fashion-MNIST's statistics: the backbone was trained on inputs normalised with them.
    config.data.mean, config.data.std = 0.2860, 0.3530
    config.batch_size = 64
    config.eval_batch_size = 500
    config.num_train_steps = int(options["steps"])
    config.learning_rate = 1e-3
    config.optimizer.name = "adam"
    config.optimizer.warmup_epochs = 0.0
    config.log_every_steps = 50
    config.eval_every_steps = int(options["steps"])
    config.checkpoint_every_steps = int(options["steps"])
    if options["mode"] != "scratch":
        # The frozen backbone's pooled features vary little on digits (standard deviation about
        # 0.08), so a head alone needs a ten times larger step than the whole network (at 1e-3
        # it reached 30% in 400 steps).
        config.learning_rate = 1e-2
        config.transfer.source = f"checkpoint:{options['pretrained']}"
        config.transfer.dont_load = ("head/.*",)
        config.transfer.trainable = ("head/.*",)
    if options["mode"] == "finetune":
        config.transfer.finetune_epochs = 1.0  # capped by num_train_steps, as the head phase
        config.transfer.finetune_learning_rate = 1e-3
    return config
