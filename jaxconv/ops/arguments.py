"""Checks for the arguments of the ops, made once at the public boundary.

Each check raises one `ValueError` that names the problem and the fix, so that a mistyped mode or
a kernel of the wrong rank fails before anything is traced or compiled.
"""

import operator
from collections.abc import Sequence

MODES = ("full", "same", "valid")
PADDINGS = ("zero", "reflect", "symmetric", "edge", "wrap")


def check_choice(value: str, choices: Sequence[str], what: str) -> str:
    """Returns `value` if it is one of `choices`, else raises a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        known = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"unknown {what} {value!r}: choose one of {known}")
    return value


def check_padding(padding: str, choices: Sequence[str] = PADDINGS) -> str:
    """Checks a boundary padding name; numpy's 'constant' is spelt 'zero' here."""
    if padding == "constant":
        raise ValueError("padding 'constant' is spelt 'zero' here (numpy.pad's zero fill)")
    return check_choice(padding, choices, "padding")


def per_axis(value, ndim: int, what: str, minimum: int) -> tuple[int, ...]:
    """Expands an int or a sequence of ints to one int per axis, each at least `minimum`.

    `what` names the argument in the error, e.g. 'stride' or 'window'.
    """
    values = tuple(value) if isinstance(value, Sequence) else (value,) * ndim
    if len(values) != ndim:
        raise ValueError(
            f"{what} has {len(values)} entries but there are {ndim} axes: give one int, "
            f"or one per axis"
        )
    try:
        values = tuple(operator.index(entry) for entry in values)
    except TypeError:
        raise ValueError(f"{what} must be made of integers, got {value!r}") from None
    if any(entry < minimum for entry in values):
        raise ValueError(f"{what} must be at least {minimum} on every axis, got {value!r}")
    return values


def check_ranks(input_ndim: int, kernel_ndim: int, kernel_name: str = "kernel") -> None:
    """A kernel acts on the trailing axes of the input, so it cannot have more of them."""
    if kernel_ndim > input_ndim:
        raise ValueError(
            f"the {kernel_name} has {kernel_ndim} dimensions but the input only {input_ndim}: "
            f"the {kernel_name} acts on the input's trailing axes, so drop {kernel_name} axes "
            f"or give the input the missing ones"
        )


def check_not_empty(shape: Sequence[int], what: str) -> None:
    if any(size == 0 for size in shape):
        raise ValueError(f"the {what} has an empty axis (shape {tuple(shape)}): give it data")
