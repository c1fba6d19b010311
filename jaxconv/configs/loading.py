"""Loading experiment files and applying `--config.key=value` overrides.

An experiment is a Python file with `get_config(arg=None)`; `path:arg` passes `arg` through, in
the big_vision style (`experiments/resnet_fashion.py:depth=56,plain=True`). Every failure is a
`ConfigError` whose message names the problem and the fix, raised before anything compiles.
"""

import ast
import difflib
import importlib.util
import inspect
import pathlib

import ml_collections

from jaxconv.errors import ConfigError

__all__ = ["ConfigError", "flat_keys", "load", "override", "parse_variant"]


def load(spec: str) -> ml_collections.ConfigDict:
    """Loads `path[:arg]` and returns its locked config."""
    path_text, _, arg = spec.partition(":")
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise ConfigError(f"config file '{path_text}' does not exist. {_known_experiments(path)}")
    module_spec = importlib.util.spec_from_file_location(f"_jaxconv_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        raise ConfigError(
            f"config file '{path}' fails as it is read: {_described(error)}; fix the file."
        ) from error
    get_config = getattr(module, "get_config", None)
    if get_config is None:
        raise ConfigError(f"config file '{path}' defines no get_config(arg=None) function.")
    takes_arg = bool(inspect.signature(get_config).parameters)
    if arg and not takes_arg:
        raise ConfigError(
            f"config file '{path}' takes no ':{arg}' variant (its get_config has no argument)."
        )
    try:
        config = get_config(arg or None) if takes_arg else get_config()
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(
            f"get_config of '{path}' fails: {_described(error)}; fix the file or the variant."
        ) from error
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"get_config of '{path}' returned {type(config).__name__}, not a ConfigDict; "
            "start from jaxconv.configs.base.get_config() and return it."
        )
    config.lock()
    return config


def _described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def parse_variant(arg: str | None, defaults: dict) -> dict:
    """Parses a `key=value,key=value` variant string against `defaults`.

    Each value is read as the type of its default, as a command-line override is: a bool from
    true/false/1/0/yes/no (any case), a number, a string; a default of None takes any literal.
    An unknown key, or a value that is not of its default's type, raises ConfigError.
    """
    options = dict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, sep, text = item.partition("=")
        if not sep or key not in defaults:
            raise ConfigError(
                f"unknown variant '{item}'; this experiment takes "
                f"{', '.join(f'{k}=' for k in defaults)} (e.g. 'path.py:{key}=...')."
            )
        default = defaults[key]
        field_type = None if default is None else type(default)
        options[key] = _convert(text, field_type, key, spelled=f"variant {key}={text}")
    return options


def override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets the dotted `key` of `config` from the command-line `text`."""
    *parents, leaf = key.split(".")
    node = config
    for depth, name in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            raise _unknown_key(config, ".".join(parents[: depth + 1]), key)
        node = node[name]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise _unknown_key(config, key, key)
    if isinstance(node[leaf], ml_collections.ConfigDict):
        raise ConfigError(
            f"'{key}' is a section, not a value; set one of its keys, e.g. "
            f"--config.{key}.{next(iter(node[leaf].keys()))}=..."
        )
    field_type = _field_type(node, leaf)
    value = _convert(text, field_type, key)
    try:
        node[leaf] = value
    except (TypeError, ValueError) as error:
        raise ConfigError(f"--config.{key}={text}: {error}") from None


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """All dotted leaf keys of `config`, e.g. ['batch_size', 'model.name', ...]."""
    keys = []
    for name, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys.extend(flat_keys(value, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


# Names people type from habit, and the key jaxconv uses for them.
_ALIASES = {
    "lr": "learning_rate",
    "epochs": "num_epochs",
    "steps": "num_train_steps",
    "wd": "optimizer.weight_decay",
    "weight_decay": "optimizer.weight_decay",
}


def _unknown_key(config, missing: str, requested: str) -> ConfigError:
    """An error for `requested` whose first undeclared part is `missing`, with the nearest key."""
    leaf = requested.rsplit(".", 1)[-1]
    if leaf in _ALIASES:
        hint = f"Did you mean '{_ALIASES[leaf]}'?"
    else:
        hint = _nearest(config, requested.split("."))
    return ConfigError(
        f"unknown config key '{requested}' ('{missing}' is not declared in "
        f"jaxconv/configs/base.py). {hint}"
    )


def _nearest(config: ml_collections.ConfigDict, parts: list[str], prefix: str = "") -> str:
    """Walks `parts` down `config`, correcting each misspelt part to its closest sibling."""
    name, rest = parts[0], parts[1:]
    siblings = list(config.keys())
    if name not in config:
        close = difflib.get_close_matches(name, siblings, n=1, cutoff=0.5)
        if not close:
            return f"Keys here: {', '.join(prefix + s for s in sorted(siblings))}."
        name = close[0]
    value = config[name]
    if rest and isinstance(value, ml_collections.ConfigDict):
        return _nearest(value, rest, f"{prefix}{name}.")
    return f"Did you mean '{prefix}{name}'?"


def _field_type(node: ml_collections.ConfigDict, leaf: str):
    reference = node.get_ref(leaf)
    return reference.get_type()


def _convert(text: str, field_type, key: str, spelled: str | None = None):
    spelled = spelled or f"--config.{key}={text}"
    if field_type is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(f"{spelled}: expected true or false.")
    if field_type is str:
        return None if text == "None" else text
    value = _literal(text)
    if field_type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if field_type is tuple and isinstance(value, list | str | int | float):
        value = tuple(value) if isinstance(value, list) else (value,)
    wrong_type = field_type is not None and not isinstance(value, field_type)
    if value is not None and (wrong_type or (field_type is int and isinstance(value, bool))):
        raise ConfigError(
            f"{spelled}: expected a value of type {field_type.__name__}, got '{text}'."
        )
    return value


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _known_experiments(path: pathlib.Path) -> str:
    folder = path.parent if path.parent.is_dir() else pathlib.Path("experiments")
    names = sorted(str(p) for p in folder.glob("*.py") if not p.name.startswith("_"))
    if not names:
        return "Pass --config experiments/<name>.py."
    return "Available: " + ", ".join(names) + "."
