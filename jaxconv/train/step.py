"""The pure training and evaluation steps.

Both are module-level functions of `(state, batch)` with the task bound by keyword; they are
compiled in exactly one place, `jaxconv.train.parallel`. They never know how many devices there
are: under `jax.jit` with a data-sharded global batch, sums and batch-norm statistics are
already global. Under `jax.pmap`, `axis_name` names the device axis and gradients, metrics and
batch statistics are averaged or summed over it here.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jaxconv.train.state import TrainState

Metrics = dict[str, tuple[jax.Array, jax.Array]]


def _pmean(tree, axis_name):
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _psum(tree, axis_name):
    return tree if axis_name is None else jax.lax.psum(tree, axis_name)


def train_step(
    state: TrainState, batch: dict, *, loss_and_metrics: Callable, axis_name: str | None = None
) -> tuple[TrainState, Metrics]:
    """One optimizer update on `batch`; returns the new state and (sum, count) metrics.

    Besides the task's metrics it reports the L2 norms of gradients, parameters and updates,
    the numbers that show a run going wrong before its loss does.
    """
    dropout_rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:  # a different dropout mask on each device
        dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))

    def loss_fn(params):
        variables = {**state.variables(), "params": params}
        outputs, mutated = state.apply_fn(
            variables,
            batch["image"],
            train=True,
            rngs={"dropout": dropout_rng},
            mutable=["batch_stats"],
        )
        loss, metrics = loss_and_metrics(outputs, batch)
        return loss, (metrics, mutated)

    (loss, (metrics, mutated)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = _pmean(grads, axis_name)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    batch_stats = _pmean(mutated.get("batch_stats", state.batch_stats), axis_name)

    # A non-finite loss or gradient leaves the state as it was: the run stops (or skips the
    # batch, by config) with its last good parameters, never with NaNs.
    finite = jnp.isfinite(_pmean(loss, axis_name)) & all_finite(grads)
    keep_if_bad = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    params = keep_if_bad(params, state.params)
    one = jnp.ones((), jnp.float32)
    metrics = jax.tree.map(lambda x: jnp.where(finite, x, 0.0), _psum(metrics, axis_name))
    metrics |= {
        "grad_norm": (jnp.where(finite, optax.global_norm(grads), 0.0), finite * one),
        "param_norm": (optax.global_norm(params), one),
        "update_norm": (jnp.where(finite, optax.global_norm(updates), 0.0), finite * one),
        "nonfinite": (1.0 - finite, one),
    }
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        opt_state=keep_if_bad(opt_state, state.opt_state),
        batch_stats=keep_if_bad(batch_stats, state.batch_stats),
    )
    return new_state, metrics


def all_finite(tree) -> jax.Array:
    """Whether every element of every leaf of `tree` is finite."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def eval_step(
    state: TrainState, batch: dict, *, loss_and_metrics: Callable, axis_name: str | None = None
) -> Metrics:
    """The task's (sum, count) metrics of the model in inference mode on `batch`."""
    outputs = state.apply_fn(state.variables(), batch["image"], train=False)
    _, metrics = loss_and_metrics(outputs, batch)
    return _psum(metrics, axis_name)


def add_metrics(total: Metrics | None, metrics: Metrics) -> Metrics:
    return metrics if total is None else jax.tree.map(jnp.add, total, metrics)


def mean_metrics(total: Metrics) -> dict[str, float]:
    """{name: sum / count} as Python floats (this fetches from the device)."""
    fetched = jax.device_get(total)
    return {name: float(value / max(count, 1e-12)) for name, (value, count) in fetched.items()}
