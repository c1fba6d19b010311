"""A model built from a config: `config.model` names the family and its options.

Training, the report, export and transfer learning all build their models here, so a run
rebuilt from its `config.json` is the model that trained.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from jaxconv import models
from jaxconv.errors import ConfigError, DataError

# Compute dtypes a model may run in; parameters and optimizer state stay float32.
COMPUTE_DTYPES = ("float32", "bfloat16")


def build_model(config: ml_collections.ConfigDict, num_outputs: int):
    """The model `config.model` names; options left at None keep the model's own defaults.

    `num_outputs` sizes the model's output: classes for classification and segmentation,
    image channels for denoising (`jaxconv.tasks.Task.output_size`).
    """
    if config.model.dtype not in COMPUTE_DTYPES:
        raise ConfigError(
            f"model.dtype='{config.model.dtype}'; use one of {', '.join(COMPUTE_DTYPES)} "
            "(float16 would need loss scaling; bfloat16 has float32's range and needs none)."
        )
    options = {
        key: value
        for key, value in config.model.items()
        if key not in ("name", "dtype") and value is not None
    }
    try:
        return models.create(
            config.model.name,
            num_classes=num_outputs,
            dtype=jnp.dtype(config.model.dtype),
            **options,
        )
    except (models.UnknownModelError, models.UnknownOptionError) as error:
        raise ConfigError(f"model.name='{config.model.name}': {error}") from None


def with_fields(model, **fields):
    """`model` with those of `fields` it declares replaced (`convolution` and
    `batch_norm_axis`: an MLP has neither)."""
    declared = {
        name: value for name, value in fields.items() if name in type(model).__dataclass_fields__
    }
    return model.clone(**declared) if declared else model


def check_model_input(model, config, input_shape: tuple[int, ...]) -> None:
    """Traces the model on the data's shape (no compute) so a size it cannot take fails here,
    before compiling, with the model and dataset named."""
    try:
        jax.eval_shape(
            functools.partial(model.init, train=False),
            jax.random.PRNGKey(0),
            jax.ShapeDtypeStruct(input_shape, jnp.float32),
        )
    except (ValueError, TypeError) as error:
        raise DataError(
            f"model '{config.model.name}' cannot take the {input_shape[1:]} images "
            f"of dataset '{config.data.name}': {error}"
        ) from None
