"""The pure training and evaluation steps.

Both are module-level functions of `(state, batch)` with the model and the task's loss bound by
keyword (`model` is a Linen module, or anything with its `apply`); they are
compiled in exactly one place, `jaxconv.train.parallel`. They never know how many devices there
are: under `jax.jit` with a data-sharded global batch, sums and batch-norm statistics are
already global. Under `jax.pmap`, `axis_name` names the device axis and gradients, metrics and
batch statistics are averaged or summed over it here.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxconv.train.state import TrainState

Metrics = dict[str, tuple[jax.Array, jax.Array]]


def _pmean(tree, axis_name):
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _psum(tree, axis_name):
    return tree if axis_name is None else jax.lax.psum(tree, axis_name)


def _gradients(state: TrainState, batch: dict, rng, model, loss_and_metrics, aux_weight):
    """Loss, task metrics, updated batch statistics and gradients on one (micro-)batch.

    Outputs a model sows into `auxiliary_outputs` (deep supervision: inner levels predicting
    the output, in the output's shape) each add `aux_weight` times the task's loss on them.
    """

    def loss_fn(params):
        variables = {**state.variables(), "params": params}
        outputs, mutated = model.apply(
            variables,
            batch["image"],
            train=True,
            rngs={"dropout": rng},
            mutable=["batch_stats", "auxiliary_outputs"],
        )
        loss, metrics = loss_and_metrics(outputs, batch)
        auxiliary = jax.tree.leaves(mutated.get("auxiliary_outputs", {}))
        if auxiliary:
            auxiliary_loss = sum(loss_and_metrics(output, batch)[0] for output in auxiliary)
            loss = loss + aux_weight * auxiliary_loss
            metrics = {**metrics, "auxiliary_loss": (auxiliary_loss, jnp.ones((), jnp.float32))}
        return loss, (metrics, mutated.get("batch_stats", state.batch_stats))

    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return loss, metrics, batch_stats, grads


def _accumulated_gradients(
    state, batch, rng, model, loss_and_metrics, num_microbatches, aux_weight
):
    """Gradients averaged over `num_microbatches` equal slices of `batch`, computed one slice
    at a time (so activations for only one slice are alive); batch statistics are updated
    slice after slice, as consecutive small batches would update them."""
    if num_microbatches == 1:
        return _gradients(state, batch, rng, model, loss_and_metrics, aux_weight)

    # Slice i takes rows i, i + k, i + 2k, ...: every slice spans every device's rows, so a
    # data-sharded batch is never moved between devices.
    def split(x):
        return jnp.swapaxes(
            x.reshape(x.shape[0] // num_microbatches, num_microbatches, *x.shape[1:]), 0, 1
        )

    def body(carry, inputs):
        index, micro = inputs
        batch_stats, loss_sum, metrics_sum, grads_sum = carry
        loss, metrics, batch_stats, grads = _gradients(
            state.replace(batch_stats=batch_stats),
            micro,
            jax.random.fold_in(rng, index),
            model,
            loss_and_metrics,
            aux_weight,
        )
        add = lambda a, b: jax.tree.map(jnp.add, a, b)
        return (
            batch_stats,
            loss_sum + loss,
            add(metrics_sum, metrics),
            add(grads_sum, grads),
        ), None

    first = jax.tree.map(lambda x: x[0], jax.tree.map(split, batch))
    shapes = jax.eval_shape(
        lambda: _gradients(state, first, rng, model, loss_and_metrics, aux_weight)
    )
    zeros = lambda tree: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
    carry = (state.batch_stats, jnp.zeros((), jnp.float32), zeros(shapes[1]), zeros(shapes[3]))
    (batch_stats, loss_sum, metrics, grads), _ = jax.lax.scan(
        body, carry, (jnp.arange(num_microbatches), jax.tree.map(split, batch))
    )
    scale = 1.0 / num_microbatches
    return loss_sum * scale, metrics, batch_stats, jax.tree.map(lambda g: g * scale, grads)


def train_step(
    state: TrainState,
    batch: dict,
    *,
    model,
    loss_and_metrics: Callable,
    axis_name: str | None = None,
    num_microbatches: int = 1,
    ema_decay: float = 0.0,
    auxiliary_loss_weight: float = 0.4,
) -> tuple[TrainState, Metrics]:
    """One optimizer update on `batch`; returns the new state and (sum, count) metrics.

    Besides the task's metrics it reports the L2 norms of gradients, parameters and updates,
    the numbers that show a run going wrong before its loss does, and `nonfinite` (1 for a step
    whose loss or gradient norm was not finite and was therefore not applied).
    """
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:  # a different dropout mask on each device
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    loss, metrics, batch_stats, grads = _accumulated_gradients(
        state, batch, rng, model, loss_and_metrics, num_microbatches, auxiliary_loss_weight
    )
    grads = _pmean(grads, axis_name)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    batch_stats = _pmean(batch_stats, axis_name)
    ema_params = state.ema_params
    if ema_decay > 0:
        ema_params = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)

    # A non-finite loss or gradient leaves the state as it was: the run stops (or skips the
    # batch, by config) with its last good parameters, never with NaNs. A gradient with a NaN
    # or an infinity has a non-finite norm, so the norm's one pass over the gradients tells
    # (a norm beyond float32's range, above 1.8e19, counts as non-finite too).
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(_pmean(loss, axis_name)) & jnp.isfinite(grad_norm)
    keep_if_bad = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    params = keep_if_bad(params, state.params)
    one = jnp.ones((), jnp.float32)
    metrics = jax.tree.map(lambda x: jnp.where(finite, x, 0.0), _psum(metrics, axis_name))
    metrics |= {
        "grad_norm": (jnp.where(finite, grad_norm, 0.0), finite * one),
        "param_norm": (optax.global_norm(params), one),
        "update_norm": (jnp.where(finite, optax.global_norm(updates), 0.0), finite * one),
        "nonfinite": (1.0 - finite, one),
    }
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        opt_state=keep_if_bad(opt_state, state.opt_state),
        batch_stats=keep_if_bad(batch_stats, state.batch_stats),
        ema_params=keep_if_bad(ema_params, state.ema_params),
    )
    return new_state, metrics


def eval_step(
    state: TrainState,
    batch: dict,
    *,
    model,
    loss_and_metrics: Callable,
    axis_name: str | None = None,
) -> Metrics:
    """The task's (sum, count) metrics of `model` in inference mode on `batch`."""
    outputs = model.apply(state.variables(for_eval=True), batch["image"], train=False)
    _, metrics = loss_and_metrics(outputs, batch)
    return _psum(metrics, axis_name)


def add_metrics(total: Metrics | None, metrics: Metrics) -> Metrics:
    return metrics if total is None else jax.tree.map(jnp.add, total, metrics)


def mean_metrics(total: Metrics) -> dict:
    """{name: sum / count} fetched from the device: floats, or arrays for vector metrics such as
    per-class IoU (whose elements with a zero count are NaN)."""
    fetched = jax.device_get(total)
    means = {}
    for name, (value, count) in fetched.items():
        value, count = np.asarray(value, np.float64), np.asarray(count, np.float64)
        if value.ndim == 0:
            means[name] = float(value / max(count, 1e-12))
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                means[name] = np.where(count > 0, value / np.where(count > 0, count, 1), np.nan)
    return means
