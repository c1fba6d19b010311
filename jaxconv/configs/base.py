"""Every configuration key jaxconv knows, with its default.

Experiments start from `get_config()` and change values; they never add keys. The config is
locked, so an override naming a key that is not declared here fails at once with the nearest
valid key. Keys whose default is `None` mean "let the component choose" (a model's own default,
the dataset's own number of classes).
"""

import ml_collections

# The layers whose shape follows the number of classes: the head, and a deeply supervised
# U-Net's auxiliary heads. Not loading them lets a pretrained model serve any class count
# (transfer.dont_load's default).
CLASS_LAYERS = ("head/.*", r"auxiliary\d+/.*")

# Dataset options: each key of `config.data` that a dataset's `load` may read, with its type.
# None keeps the dataset's own default; setting one the chosen dataset does not read is an
# error (jaxconv/data/__init__.py).
DATASET_OPTIONS = {
    "image_size": int,
    "channels": int,
    "num_classes": int,
    "label_key": str,
    "in_memory": bool,
    "seed": int,
    "num_train_examples": int,
    "num_test_examples": int,
    "canvas_size": int,
    "items_per_canvas": tuple,
    "train_items_per_canvas": tuple,
    "scale_range": tuple,
    "train_rotation": float,
    "train_shear": float,
    "item_dataset": str,
    "patch_size": int,
    "sigma": float,
    "sigma_range": tuple,
    "test_images": tuple,
    "test_tile_size": int,
}


def _model() -> ml_collections.ConfigDict:
    """Model options passed to `models.create`; `None` leaves the model's own default."""
    model = ml_collections.ConfigDict()
    model.name = "lenet5"
    model.dtype = "float32"  # compute dtype; parameters stay float32
    # Options some families take. Unset options are not passed, so a model that does not take
    # an option only complains when an experiment sets it.
    model.activation = ml_collections.FieldReference(None, field_type=str)
    model.pooling = ml_collections.FieldReference(None, field_type=str)
    model.batch_norm = ml_collections.FieldReference(None, field_type=bool)
    model.dropout_rate = ml_collections.FieldReference(None, field_type=float)
    model.width = ml_collections.FieldReference(None, field_type=int)
    model.depth = ml_collections.FieldReference(None, field_type=int)
    model.hidden_sizes = ml_collections.FieldReference(None, field_type=tuple)
    model.upsampling = ml_collections.FieldReference(None, field_type=str)
    model.residual = ml_collections.FieldReference(None, field_type=bool)
    # Deep supervision: this many inner levels predict the output too (U-Net's coarsest decoder
    # levels); their losses, times `auxiliary_loss_weight`, join the training loss.
    model.auxiliary_heads = ml_collections.FieldReference(None, field_type=int)
    return model


def _data() -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict()
    data.name = "mnist_5k"
    data.data_dir = ml_collections.FieldReference(None, field_type=str)
    data.train_split = "train"
    data.eval_split = "test"
    # Augmentations applied to training batches, '|'-separated, each `name` or `name:argument`;
    # see `jaxconv.data.augment.OPERATIONS` (e.g. 'translate:2|flip_horizontal').
    data.augment = ""
    # Per-channel normalisation after scaling uint8 to [0, 1]: (x - mean) / std.
    # A number, or a tuple with one value per channel.
    data.mean = ml_collections.FieldReference(0.0, field_type=object)
    data.std = ml_collections.FieldReference(1.0, field_type=object)
    for key, field_type in DATASET_OPTIONS.items():
        data[key] = ml_collections.FieldReference(None, field_type=field_type)
    # A labelled-data budget: this many training examples per class (None: all of them).
    data.examples_per_class = ml_collections.FieldReference(None, field_type=int)
    data.num_threads = 4  # grain reader threads
    data.prefetch = 8  # batches read ahead
    return data


def _optimizer() -> ml_collections.ConfigDict:
    optimizer = ml_collections.ConfigDict()
    optimizer.name = "adamw"  # adamw | adam | sgd
    optimizer.weight_decay = 1e-4  # decoupled, on kernels only
    optimizer.momentum = 0.9  # sgd
    optimizer.nesterov = False  # sgd
    optimizer.b1 = 0.9
    optimizer.b2 = 0.999
    optimizer.schedule = "cosine"  # cosine | constant | step
    optimizer.warmup_epochs = 0.0
    optimizer.end_learning_rate_factor = 0.0  # cosine ends at this fraction of the peak
    optimizer.step_epochs = ()  # step schedule: epochs at which the rate is divided by 10
    optimizer.grad_clip_norm = 0.0  # 0 disables clipping
    optimizer.ema_decay = 0.0  # > 0 keeps an exponential moving average of the parameters,
    # which evaluation then uses
    return optimizer


def _parallel() -> ml_collections.ConfigDict:
    parallel = ml_collections.ConfigDict()
    parallel.mode = "jit"  # jit (a sharded global batch) | pmap (per-device replicas)
    parallel.shard_params = False  # jit: split large parameters over devices (FSDP-style)
    parallel.sync_batch_norm = True  # pmap: normalise with the global batch's statistics
    # Multi-host runs: launch.py reads these (or JAX's own environment variables) to start
    # jax.distributed; leave them empty on one host.
    parallel.coordinator_address = ""
    parallel.num_processes = 0
    parallel.process_id = -1
    return parallel


def _tasks(config: ml_collections.ConfigDict) -> None:
    """Options of the segmentation and denoising tasks."""
    config.segmentation = ml_collections.ConfigDict()
    config.segmentation.class_weights = ()  # per-class cross-entropy weights; () = equal
    config.segmentation.dice_weight = 0.0  # adds this times the soft Dice loss
    config.denoising = ml_collections.ConfigDict()
    # The model outputs the noise (residual learning, as DnCNN); the estimate is input - output.
    config.denoising.predicts_noise = True


def _detection() -> ml_collections.ConfigDict:
    """Options of the coin-counting job (`job='count_coins'`, see jaxconv/detection.py)."""
    detection = ml_collections.ConfigDict()
    detection.radii = tuple(range(12, 42, 2))  # disk radii searched, in pixels
    detection.surround = 1.5  # ring radius / disk radius of the zero-mean detector
    detection.threshold = 0.15
    detection.min_distance = 15
    detection.padding = "symmetric"
    detection.match_tolerance = 6.0  # pixels between a detection and a reference centre
    # The true centres to score against; '' uses the ones packaged for skimage's coins image.
    detection.reference_path = ""
    return detection


def _transfer() -> ml_collections.ConfigDict:
    """Starting from pretrained weights; see jaxconv/transfer."""
    transfer = ml_collections.ConfigDict()
    # '' trains from scratch; 'torchvision:<file.pth or .safetensors>' converts torchvision's
    # weights for model.name; 'checkpoint:<workdir>' loads a jaxconv run's newest checkpoint,
    # or the model that `launch.py export` wrote to a folder.
    transfer.source = ""
    # Regexes (full match, e.g. 'head/.*' for 'head/kernel') of the variables that keep their
    # fresh initialisation: the default replaces the layers that map to the classes (the head
    # and any auxiliary heads), so any number of classes fits.
    transfer.dont_load = CLASS_LAYERS
    # Regexes of the parameters that train; the others get no gradient, no update and no
    # optimizer state, and while any is frozen the model runs in inference mode (batch norm
    # uses and keeps its running statistics; no dropout). () trains everything.
    transfer.trainable = ()
    # > 0 adds a second run: every layer trains for this many epochs at this learning rate,
    # from the first run's last checkpoint (runs in workdir/head, then workdir/finetune).
    transfer.finetune_epochs = 0.0
    transfer.finetune_learning_rate = 1e-4
    return transfer


# The range of every numeric key, by name (jaxconv/configs/checks.py: RULES), checked before
# anything is built. A tuple's elements each obey the rule; None (unset) is always allowed.
RANGES = {
    "seed": "any",
    "batch_size": "positive",
    "eval_batch_size": "positive",
    "learning_rate": "positive",
    "num_epochs": "positive",
    "num_train_steps": "positive_or_minus_one",
    "num_microbatches": "at_least_one",
    "auxiliary_loss_weight": "non_negative",
    "log_every_steps": "positive",
    "eval_every_steps": "positive_or_minus_one",
    "num_eval_steps": "positive_or_minus_one",
    "checkpoint_every_steps": "positive",
    "keep_checkpoints": "at_least_one",
    "max_skipped_share": "fraction",
    "num_prediction_images": "non_negative",
    "model.dropout_rate": "below_one",
    "model.width": "positive",
    "model.depth": "positive",
    "model.hidden_sizes": "positive",
    "model.auxiliary_heads": "non_negative",
    "data.mean": "any",
    "data.std": "positive",
    "data.image_size": "positive",
    "data.channels": "positive",
    "data.num_classes": "positive",
    "data.seed": "any",
    "data.num_train_examples": "positive",
    "data.num_test_examples": "positive",
    "data.canvas_size": "positive",
    "data.items_per_canvas": "non_negative",
    "data.train_items_per_canvas": "non_negative",
    "data.scale_range": "positive",
    "data.train_rotation": "non_negative",
    "data.train_shear": "non_negative",
    "data.patch_size": "positive",
    "data.sigma": "non_negative",
    "data.sigma_range": "non_negative",
    "data.test_tile_size": "positive",
    "data.examples_per_class": "positive",
    "data.num_threads": "non_negative",
    "data.prefetch": "non_negative",
    "optimizer.weight_decay": "non_negative",
    "optimizer.momentum": "below_one",
    "optimizer.b1": "below_one",
    "optimizer.b2": "below_one",
    "optimizer.warmup_epochs": "non_negative",
    "optimizer.end_learning_rate_factor": "non_negative",
    "optimizer.step_epochs": "positive",
    "optimizer.grad_clip_norm": "non_negative",
    "optimizer.ema_decay": "below_one",
    "parallel.num_processes": "non_negative",
    "parallel.process_id": "at_least_minus_one",
    "transfer.finetune_epochs": "non_negative",
    "transfer.finetune_learning_rate": "positive",
    "segmentation.class_weights": "non_negative",
    "segmentation.dice_weight": "non_negative",
    "detection.radii": "positive",
    "detection.surround": "above_one",
    "detection.threshold": "any",
    "detection.min_distance": "positive",
    "detection.match_tolerance": "positive",
}

# The keys a resumed run may change without `resume_changes='allow'` (an entry ending in '.'
# is a whole section): how long it runs, how often it logs, evaluates and saves, what it keeps
# and draws, and where and how fast it computes. Every change is recorded all the same. A
# change of any other key (the model, the data, the recipe) would mix two experiments in one
# workdir, so a resume refuses it with the keys' diff.
RESUMABLE_KEYS = (
    "num_epochs",
    "num_train_steps",
    "log_every_steps",
    "eval_every_steps",
    "num_eval_steps",
    "eval_batch_size",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "best_metric",
    "best_mode",
    "on_nonfinite",
    "max_skipped_share",
    "num_prediction_images",
    "report",
    "profile_steps",
    "fast_conv",
    "resume_changes",
    "data.data_dir",
    "data.num_threads",
    "data.prefetch",
    "data.in_memory",
    "parallel.mode",
    "parallel.shard_params",
    "parallel.coordinator_address",
    "parallel.num_processes",
    "parallel.process_id",
    "detection.",  # the coin-counting job's settings: training never reads them
)

# The keys that name one of a few choices, and those choices.
CHOICES = {
    "job": ("train", "count_coins"),
    "task": ("classification", "segmentation", "denoising"),
    "on_nonfinite": ("stop", "skip"),
    "best_mode": ("max", "min"),
    "resume_changes": ("refuse", "allow"),
    "parallel.mode": ("jit", "pmap"),
    "optimizer.name": ("adamw", "adam", "sgd"),
    "optimizer.schedule": ("cosine", "constant", "step"),
    "model.dtype": ("float32", "bfloat16"),
}


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.job = "train"  # train | count_coins
    config.task = "classification"  # classification | segmentation | denoising
    config.seed = 0

    config.batch_size = 128  # global, across all devices and hosts
    config.eval_batch_size = 256
    config.learning_rate = 1e-3  # peak learning rate
    config.num_epochs = 10.0
    config.num_train_steps = -1  # > 0 caps the run at this many steps
    config.num_microbatches = 1  # > 1 accumulates gradients over this many slices of a batch
    # Each auxiliary output a model sows (model.auxiliary_heads) adds this times the task's
    # loss on it to the training loss (the weight of PSPNet's auxiliary loss).
    config.auxiliary_loss_weight = 0.4

    config.log_every_steps = 50
    config.eval_every_steps = -1  # -1: at the end of every epoch
    # > 0 evaluates on the first this-many batches of the split only (a quick look); -1: all
    config.num_eval_steps = -1
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3  # the newest ones; the best one is kept besides
    config.best_metric = ""  # e.g. 'test_accuracy': also keep the best checkpoint by it
    config.best_mode = "max"  # max | min
    config.on_nonfinite = "stop"  # stop | skip: what a non-finite loss or gradient does
    # With on_nonfinite='skip', a run that skipped more than this share of the steps it took
    # (since it started or resumed) ends with an error after saving: its figures describe
    # too few updates.
    config.max_skipped_share = 0.05
    # A resume that changes a key outside RESUMABLE_KEYS is refused unless this is 'allow';
    # an allowed change is recorded in workdir/config_changes.jsonl.
    config.resume_changes = "refuse"  # refuse | allow
    # On CPU, time each convolution's formulations (per-tap GEMMs, im2col, XLA's own) for its
    # shape and train with the fastest (jaxconv/cpu/planning.py; the choices are kept in
    # workdir/conv_plans.json). False: XLA's convolution everywhere. Other platforms: XLA's.
    config.fast_conv = True
    # TensorBoard shows the predictions on this many evaluation examples at each evaluation
    config.num_prediction_images = 8
    config.report = True  # launch.py writes workdir/report/index.html when a run ends
    # 'START:END' writes a jax.profiler trace of steps START+1 to END into workdir/profile
    # (TensorBoard's profile plugin and Perfetto open it); '' writes none.
    config.profile_steps = ""

    config.model = _model()
    config.data = _data()
    config.optimizer = _optimizer()
    config.parallel = _parallel()
    config.transfer = _transfer()
    _tasks(config)
    config.detection = _detection()
    return config
