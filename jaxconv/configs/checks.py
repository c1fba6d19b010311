"""Range checks of a config's numbers, and what may change when a run resumes.

`check(config)` runs before anything is built or compiled: every numeric key has a rule in
`jaxconv.configs.base.RANGES`, and a value outside it stops the run with one ConfigError that
names each key, its value and what it takes. `resume_changes(saved, config)` lists the keys
that differ from a run's saved config, apart from those a resume may change
(`base.RESUMABLE_KEYS`).
"""

import math

import ml_collections

from jaxconv.configs import base
from jaxconv.errors import ConfigError

# Rule name -> (test of one number, what the key takes).
RULES = {
    "positive": (lambda x: x > 0, "a number above 0"),
    "non_negative": (lambda x: x >= 0, "a number of 0 or more"),
    "at_least_one": (lambda x: x >= 1, "1 or more"),
    "above_one": (lambda x: x > 1, "a number above 1"),
    "positive_or_minus_one": (lambda x: x > 0 or x == -1, "a number above 0, or -1"),
    "fraction": (lambda x: 0 <= x <= 1, "a number from 0 to 1"),
    "below_one": (lambda x: 0 <= x < 1, "a number from 0 up to (not including) 1"),
    "at_least_minus_one": (lambda x: x >= -1, "-1 or more"),
    "any": (lambda x: True, "any number"),
}


def flatten(config: ml_collections.ConfigDict | dict, prefix: str = "") -> dict:
    """{'batch_size': 128, 'model.name': 'lenet5', ...}, tuples and lists as lists."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict | dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple | list) else value
    return flat


def _numbers(value) -> list | None:
    """The numbers a value holds (one, or a tuple's), or None when it holds something else."""
    values = value if isinstance(value, list) else [value]
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return values
    return None


def problems(config) -> list[str]:
    """Each numeric key whose value breaks its rule, and each choice key whose value is not
    one of its choices, as 'key=value: it takes ...'."""
    found = []
    for key, value in flatten(config).items():
        if key in base.CHOICES:
            if value not in base.CHOICES[key]:
                found.append(f"{key}={value!r}: it takes one of {', '.join(base.CHOICES[key])}")
            continue
        numbers = _numbers(value)
        if value is None or numbers is None:
            continue
        rule = base.RANGES.get(key)
        if rule is None:
            found.append(f"{key}={value!r} has no declared range (jaxconv/configs/base.py RANGES)")
            continue
        test, takes = RULES[rule]
        if not all(math.isfinite(number) and test(number) for number in numbers):
            found.append(f"{key}={value!r}: it takes {takes}")
    return found


def profile_window(text: str) -> tuple[int, int] | None:
    """'START:END' as (START, END), or None for ''; ConfigError for anything else."""
    if not text:
        return None
    start, separator, end = text.partition(":")
    if not (separator and start.isdigit() and end.isdigit() and int(start) < int(end)):
        raise ConfigError(
            f"profile_steps={text!r}: write START:END with 0 <= START < END (e.g. '10:20')."
        )
    return int(start), int(end)


def check(config) -> None:
    """Stops with one ConfigError listing every key out of its range or choices."""
    found = problems(config)
    try:
        profile_window(config.profile_steps)
    except ConfigError as error:
        found.append(str(error))
    if found:
        raise ConfigError(
            "config values out of range: "
            + "; ".join(found)
            + ". Set them with --config.<key>=<value>."
        )


def config_diff(saved, config) -> dict[str, tuple]:
    """{key: (saved value, new value)} for every key that differs between a run's saved config
    and `config` (tuples and lists alike)."""
    old, new = flatten(saved), flatten(config)
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def resumable(key: str) -> bool:
    """Whether a resume may change `key`: it is in base.RESUMABLE_KEYS, or in a section listed
    there ('detection.')."""
    return any(
        key == entry or (entry.endswith(".") and key.startswith(entry))
        for entry in base.RESUMABLE_KEYS
    )


def resume_changes(saved, config) -> dict[str, tuple]:
    """`config_diff` without the keys a resume may change."""
    return {key: values for key, values in config_diff(saved, config).items() if not resumable(key)}
