"""The training state: everything a run needs to continue exactly where it stopped."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
    """Parameters, batch statistics, optimizer state, step and RNG key of a run.

    `rng` is the run's base key; the step's own key is `fold_in(rng, step)`, so no key is ever
    split and stored twice and a resumed run draws the same dropout masks. `ema_params` is an
    exponential moving average of `params` when the config asks for one, else empty.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    ema_params: Any
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def variables(self, *, for_eval: bool = False) -> dict:
        """The model variables for `model.apply`; for evaluation, the averaged parameters when
        there are any."""
        params = self.ema_params if for_eval and self.ema_params else self.params
        if self.batch_stats:
            return {"params": params, "batch_stats": self.batch_stats}
        return {"params": params}


def create(
    model: nn.Module,
    tx: optax.GradientTransformation,
    input_shape: tuple[int, ...],
    rng: jax.Array,
    ema: bool = False,
) -> TrainState:
    """Initialises `model` on a dummy batch of `input_shape` (N, H, W, C)."""
    init_rng, state_rng = jax.random.split(rng)
    variables = model.init(init_rng, jnp.zeros(input_shape, jnp.float32), train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=state_rng,
        ema_params=params if ema else {},
        tx=tx,
    )


def count_parameters(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
