import pathlib

import pytest

from jaxconv.configs import base, loading

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.py"))


@pytest.fixture
def config():
    config = base.get_config()
    config.lock()
    return config


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_loads_and_is_locked(path):
    config = loading.load(str(path))
    with pytest.raises(AttributeError):
        config.not_a_key = 1


def test_overrides_are_typed_by_the_declared_field(config):
    loading.override(config, "batch_size", "32")
    loading.override(config, "learning_rate", "1")  # an int where a float is declared
    loading.override(config, "optimizer.nesterov", "true")
    loading.override(config, "model.activation", "tanh")  # declared None, typed str
    loading.override(config, "model.hidden_sizes", "(300, 100)")
    assert config.batch_size == 32
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.optimizer.nesterov is True
    assert config.model.activation == "tanh"
    assert config.model.hidden_sizes == (300, 100)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("optimizer.weight_dcay", "optimizer.weight_decay"),
        ("lerning_rate", "learning_rate"),
        ("optimizer.lr", "learning_rate"),
        ("optimizr.lr", "learning_rate"),
        ("modle.name", "model.name"),
    ],
)
def test_unknown_key_names_the_key_and_the_nearest_valid_one(config, key, suggestion):
    with pytest.raises(loading.ConfigError) as error:
        loading.override(config, key, "1")
    assert f"'{key}'" in str(error.value)
    assert f"'{suggestion}'" in str(error.value)


def test_wrong_type_is_refused(config):
    with pytest.raises(loading.ConfigError, match="expected a value of type int"):
        loading.override(config, "batch_size", "abc")
    with pytest.raises(loading.ConfigError, match="true or false"):
        loading.override(config, "optimizer.nesterov", "maybe")


def test_a_section_is_not_a_value(config):
    with pytest.raises(loading.ConfigError, match="is a section"):
        loading.override(config, "model", "lenet5")


def test_missing_config_file_lists_the_experiments(tmp_path):
    with pytest.raises(loading.ConfigError, match="does not exist") as error:
        loading.load(str(ROOT / "experiments" / "lenet_mnsit.py"))
    assert "lenet5_mnist.py" in str(error.value)


def test_variant_string_reaches_get_config(tmp_path):
    path = tmp_path / "variant.py"
    path.write_text(
        "from jaxconv.configs import base, loading\n"
        "def get_config(arg=None):\n"
        "    options = loading.parse_variant(arg, {'depth': 20, 'plain': False})\n"
        "    config = base.get_config()\n"
        "    config.model.depth = options['depth']\n"
        "    config.model.residual = not options['plain']\n"
        "    return config\n"
    )
    config = loading.load(f"{path}:depth=56,plain=True")
    assert config.model.depth == 56 and config.model.residual is False
    with pytest.raises(loading.ConfigError, match="unknown variant"):
        loading.load(f"{path}:width=3")


def test_variant_on_a_config_without_variants_is_refused():
    with pytest.raises(loading.ConfigError, match="takes no"):
        loading.load(str(ROOT / "experiments" / "count_coins.py") + ":depth=3")


@pytest.mark.parametrize(
    "variant, residual",
    [("depth=20,plain=false", True), ("plain=False", True), ("plain=TRUE", False), ("", True)],
)
def test_variants_are_typed_by_their_defaults(variant, residual):
    config = loading.load(f"experiments/resnet_fashion.py:{variant}")
    assert config.model.name.startswith("resnet" if residual else "plain")


@pytest.mark.parametrize(
    "variant, message",
    [
        ("plain=maybe", "variant plain=maybe: expected true or false"),
        ("depth=2.5", "variant depth=2.5: expected a value of type int"),
        ("epochs=ten", "variant epochs=ten: expected a value of type float"),
        ("depth=True", "variant depth=True: expected a value of type int"),
    ],
)
def test_a_variant_of_the_wrong_type_is_refused(variant, message):
    with pytest.raises(loading.ConfigError, match=message):
        loading.load(f"experiments/resnet_fashion.py:{variant}")


@pytest.mark.parametrize(
    "body, message",
    [
        ("raise RuntimeError('oops')", "fails as it is read: RuntimeError: oops"),
        ("def get_config():\n    return None", "returned NoneType, not a ConfigDict"),
        ("def get_config():\n    return {}['missing']", "get_config of .* fails: KeyError"),
    ],
)
def test_a_config_file_that_fails_or_returns_no_config_is_named(tmp_path, body, message):
    path = tmp_path / "broken.py"
    path.write_text(body + "\n")
    with pytest.raises(loading.ConfigError, match=message):
        loading.load(str(path))
