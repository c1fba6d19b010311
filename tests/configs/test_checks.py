"""Range checks of every numeric key, and the keys a resume may change."""

import pytest

from jaxconv.configs import base, checks
from jaxconv.errors import ConfigError


def test_every_numeric_key_has_a_declared_range():
    numeric = {
        key
        for key, value in checks.flatten(base.get_config()).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    # Keys whose default is None are numeric too when set: all of DATASET_OPTIONS' numbers.
    numeric |= {f"data.{key}" for key, kind in base.DATASET_OPTIONS.items() if kind in (int, float)}
    assert numeric - set(base.RANGES) == set()
    assert set(base.RANGES) <= set(checks.flatten(base.get_config()))


def test_the_defaults_and_every_experiment_are_in_range():
    from jaxconv.configs import loading

    assert checks.problems(base.get_config()) == []
    for name in ("lenet5_mnist", "resnet_fashion", "unet_scattered_digits", "unet_denoise"):
        assert checks.problems(loading.load(f"experiments/{name}.py")) == [], name


@pytest.mark.parametrize(
    "key, value",
    [
        ("batch_size", 0),
        ("eval_batch_size", -8),
        ("learning_rate", float("nan")),
        ("learning_rate", 0.0),
        ("num_epochs", -1.0),
        ("num_train_steps", -2),
        ("keep_checkpoints", 0),
        ("max_skipped_share", 1.5),
        ("data.std", (0.5, 0.0, 0.5)),
        ("data.std", 0.0),
        ("optimizer.b2", 1.0),
        ("optimizer.ema_decay", -0.1),
        ("model.dropout_rate", 1.0),
        ("on_nonfinite", "ignore"),
        ("resume_changes", "always"),
        ("parallel.mode", "pjit"),
    ],
)
def test_a_value_out_of_range_is_named_with_what_the_key_takes(key, value):
    config = base.get_config()
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
        node = node[name]
    node[leaf] = value
    with pytest.raises(ConfigError, match=f"{key}=.*it takes"):
        checks.check(config)


def test_resume_changes_lists_the_changed_keys_but_the_resumable_ones():
    saved = base.get_config().to_dict()
    config = base.get_config()
    config.num_train_steps = 100  # resumable
    config.data.num_threads = 1  # resumable
    config.model.name = "lenet5_1998"
    config.batch_size = 64
    assert checks.resume_changes(saved, config) == {
        "batch_size": (128, 64),
        "model.name": ("lenet5", "lenet5_1998"),
    }
