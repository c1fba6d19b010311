"""The model registry: `create(name, num_classes=..., **overrides)` returns a Linen module.

Every model is called as `model.apply(variables, x, train=False)` on NHWC input. Variants are data:
each registry entry is a module class or a `functools.partial` of one, and overrides are its
dataclass fields. Overrides whose value is None are ignored, so a config can declare an optional
model field as None to mean "the model's default".
"""

import dataclasses
import difflib
import functools
from collections.abc import Callable

import flax.linen as nn

from jaxconv.models import resnet, unet, vgg
from jaxconv.models.alexnet import AlexNet
from jaxconv.models.dncnn import DnCNN
from jaxconv.models.lenet import LeNet5
from jaxconv.models.mlp import MLP
from jaxconv.models.resnet import BasicBlock, Bottleneck, ResNet
from jaxconv.models.summary import Summary, summary
from jaxconv.models.unet import UNet
from jaxconv.models.vgg import VGG

Factory = Callable[..., nn.Module]

REGISTRY: dict[str, Factory] = {
    "lenet5": LeNet5,
    "lenet5_1998": functools.partial(LeNet5, activation="tanh", pooling="avg"),
    "mlp": MLP,
    "alexnet": AlexNet,
    **vgg.registry(),
    **resnet.registry(),
    **unet.registry(),
    "dncnn": DnCNN,
}

__all__ = [
    "REGISTRY",
    "AlexNet",
    "BasicBlock",
    "Bottleneck",
    "DnCNN",
    "LeNet5",
    "MLP",
    "ResNet",
    "Summary",
    "UNet",
    "VGG",
    "UnknownModelError",
    "UnknownOptionError",
    "create",
    "feature_maps",
    "names",
    "options",
    "summary",
]


class UnknownModelError(KeyError, ValueError):
    """An unregistered model name; the message lists the known names."""

    def __str__(self) -> str:
        # KeyError would print the message in quotes.
        return str(self.args[0])


class UnknownOptionError(TypeError, ValueError):
    """An override that is not a field of the model; the message lists the valid ones."""


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(REGISTRY)


def options(name: str) -> dict[str, object]:
    """The fields `create(name, ...)` accepts, each with the value the registered variant uses."""
    factory = factory_by_name(name)
    module_class, preset = unwrap(factory)
    fields = {
        field.name: (field.default if field.default is not dataclasses.MISSING else None)
        for field in dataclasses.fields(module_class)
        if field.init and field.name not in ("parent", "name")
    }
    return {**fields, **preset}


def create(name: str, num_classes: int | None = None, **overrides: object) -> nn.Module:
    """The Linen module registered as `name`, with `num_classes` and other fields overridden.

    An unknown `name` raises UnknownModelError (a KeyError and a ValueError) listing the known
    names; an unknown override raises UnknownOptionError (a TypeError and a ValueError) naming it
    and the valid ones. Overrides that are None are ignored.
    """
    overrides = {"num_classes": num_classes, **overrides}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    valid = options(name)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        hints = [difflib.get_close_matches(key, valid, n=1) for key in unknown]
        hint = "".join(
            f" (did you mean {match[0]!r} for {key!r}?)"
            for key, match in zip(unknown, hints, strict=True)
            if match
        )
        raise UnknownOptionError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}{hint}; "
            f"valid options: {', '.join(sorted(valid))}"
        )
    # Configs may hold lists; tuples keep the module hashable (a static argument of jax.jit).
    overrides = {
        key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()
    }
    return factory_by_name(name)(**overrides)


def feature_maps(model: nn.Module, variables, x) -> tuple:
    """The model's output and its named feature maps on `x` in inference mode:
    `(output, {'stage1': ..., ...})`.

    Models sow one dict of feature maps (a sown name may not repeat a submodule's name, so the
    maps cannot be sown one by one under their layers' names).
    """
    output, state = model.apply(variables, x, train=False, mutable=["intermediates"])
    return output, state["intermediates"]["feature_maps"][0]


def factory_by_name(name: str) -> Factory:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint}; known models: {', '.join(names())}")
    return REGISTRY[name]


def unwrap(factory: Factory) -> tuple[type[nn.Module], dict[str, object]]:
    """The module class behind a (possibly nested) partial, and the keywords the partials fix."""
    preset: dict[str, object] = {}
    while isinstance(factory, functools.partial):
        preset = {**factory.keywords, **preset}
        factory = factory.func
    return factory, preset
