"""Pet segmentation on Oxford-IIIT Pet through TFDS, for users who can download it.

    python launch.py --config experiments/unet_oxford_pets.py --workdir runs/unet_pets

TFDS's `oxford_iiit_pet` (3,680 train / 3,669 test images) resized to 128x128; the trimap
gives 3 classes (0 pet, 1 background, 2 border). U-Net with 'same' padding (4 levels, base 32,
batch norm), cross-entropy plus Dice, AdamW with cosine decay, horizontal flips.
"""

from jaxconv.configs import base


def get_config():
    config = base.get_config()
    config.task = "segmentation"
    config.model.name = "unet_same"
    config.model.depth = 4
    config.model.width = 32
    config.data.name = "tfds:oxford_iiit_pet"
    config.data.label_key = "segmentation_mask"
    config.data.image_size = 128
    config.data.num_classes = 3
    config.data.augment = "flip_horizontal"
    config.data.mean, config.data.std = 0.45, 0.25
    config.segmentation.dice_weight = 0.5
    config.batch_size = 32
    config.eval_batch_size = 64
    config.learning_rate = 1e-3
    config.optimizer.warmup_epochs = 1.0
    config.num_epochs = 30.0
    config.best_metric = "test_miou"
    return config
