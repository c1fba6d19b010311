"""The optax optimizer and learning-rate schedule a config asks for."""

import jax
import ml_collections
import optax

from jaxconv.errors import ConfigError


def schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int
) -> optax.Schedule:
    """Peak `config.learning_rate`, linear warm-up, then cosine, constant or step decay."""
    peak = config.learning_rate
    options = config.optimizer
    warmup = min(int(options.warmup_epochs * steps_per_epoch), max(total_steps - 1, 0))
    decay_steps = max(total_steps - warmup, 1)
    if options.schedule == "cosine":
        main = optax.cosine_decay_schedule(
            peak, decay_steps, alpha=options.end_learning_rate_factor
        )
    elif options.schedule == "constant":
        main = optax.constant_schedule(peak)
    elif options.schedule == "step":
        boundaries = {int(epoch * steps_per_epoch) - warmup: 0.1 for epoch in options.step_epochs}
        main = optax.piecewise_constant_schedule(peak, boundaries)
    else:
        raise ConfigError(
            f"unknown optimizer.schedule '{options.schedule}'; use cosine, constant or step."
        )
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


def _decay_mask(params):
    """Weight decay on kernels only: biases and normalisation scales keep their size."""
    return jax.tree.map(lambda x: x.ndim > 1, params)


def create(
    config: ml_collections.ConfigDict, learning_rate: optax.Schedule
) -> optax.GradientTransformation:
    options = config.optimizer
    if options.name == "adamw":
        optimizer = optax.adamw(
            learning_rate,
            b1=options.b1,
            b2=options.b2,
            weight_decay=options.weight_decay,
            mask=_decay_mask,
        )
    elif options.name == "adam":
        optimizer = optax.adam(learning_rate, b1=options.b1, b2=options.b2)
    elif options.name == "sgd":
        # Coupled L2 decay, as in the ResNet and VGG papers' recipes.
        optimizer = optax.chain(
            optax.add_decayed_weights(options.weight_decay, mask=_decay_mask),
            optax.sgd(learning_rate, momentum=options.momentum or None, nesterov=options.nesterov),
        )
    else:
        raise ConfigError(f"unknown optimizer.name '{options.name}'; use adamw, adam or sgd.")
    if options.grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(options.grad_clip_norm), optimizer)
    return optimizer
