"""AlexNet, VGG-16 and ResNet-18/50 on ImageNet through TFDS, for users who have it.

    python launch.py --config experiments/imagenet.py:model=resnet50 --workdir runs/resnet50
    python launch.py --config experiments/imagenet.py:model=alexnet --workdir runs/alexnet

TFDS's `imagenet2012` must be prepared locally (its images need a manual download; see TFDS's
catalog page). Optimisation follows each paper: SGD with momentum 0.9, batch 256,
- alexnet (Krizhevsky et al., 2012): learning rate 0.01, weight decay 5e-4, divided by 10 at
  epochs 30 and 60 of 90;
- vgg16 (Simonyan and Zisserman, 2015): learning rate 0.01, weight decay 5e-4, divided by 10
  at epochs 30 and 60 of 74;
- resnet18 / resnet50 (He et al., 2016; torchvision's recipe): learning rate 0.1, weight decay
  1e-4, divided by 10 at epochs 30 and 60 of 90.
Images are resized to 224x224 and flipped at random; the papers' scale augmentation (random
crops of resized images) and 10-crop testing are not reproduced, so expect accuracies a few
points under the published ones.
"""

from jaxconv.configs import base, loading

RECIPES = {
    "alexnet": {"learning_rate": 0.01, "weight_decay": 5e-4, "epochs": 90},
    "vgg16": {"learning_rate": 0.01, "weight_decay": 5e-4, "epochs": 74},
    "resnet18": {"learning_rate": 0.1, "weight_decay": 1e-4, "epochs": 90},
    "resnet50": {"learning_rate": 0.1, "weight_decay": 1e-4, "epochs": 90},
}


def get_config(arg=None):
    options = loading.parse_variant(arg, {"model": "resnet50"})
    if options["model"] not in RECIPES:
        raise loading.ConfigError(f"model must be one of {', '.join(RECIPES)}.")
    recipe = RECIPES[options["model"]]
    config = base.get_config()
    config.model.name = options["model"]
    config.data.name = "tfds:imagenet2012"
    config.data.eval_split = "validation"
    config.data.image_size = 224
    config.data.augment = "flip_horizontal"
    config.data.mean = (0.485, 0.456, 0.406)  # ImageNet's channel statistics
    config.data.std = (0.229, 0.224, 0.225)
    config.batch_size = 256
    config.eval_batch_size = 250
    config.learning_rate = recipe["learning_rate"]
    config.num_epochs = float(recipe["epochs"])
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = recipe["weight_decay"]
    config.optimizer.schedule = "step"
    config.optimizer.step_epochs = (30.0, 60.0)
    config.log_every_steps = 100
    config.checkpoint_every_steps = 2000
    config.best_metric = "validation_accuracy"
    return config
