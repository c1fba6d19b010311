"""The same global batches give the same parameters on 1 device and on 8, with jit and pmap."""

import functools

import jax
import numpy as np
import optax
import pytest

from jaxconv import models, tasks
from jaxconv.models.from_config import with_fields
from jaxconv.train import parallel, step
from jaxconv.train import state as state_lib

STEPS = 20


def batches(image_shape, batch_size=16, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        yield {
            "image": rng.normal(size=(batch_size, *image_shape)).astype(np.float32),
            "label": rng.integers(0, 10, batch_size).astype(np.int32),
        }


def train(strategy, model_name, image_shape, num_microbatches=1):
    model = models.create(model_name, num_classes=10)
    model = with_fields(model, batch_norm_axis=strategy.batch_norm_axis)
    tx = optax.sgd(0.05, momentum=0.9)
    create = functools.partial(
        state_lib.create, model, tx, (1, *image_shape), jax.random.PRNGKey(0)
    )
    state = strategy.create_state(create)
    train_step = strategy.compile_train_step(
        step.train_step,
        model=model,
        loss_and_metrics=tasks.get("classification").loss_and_metrics,
        num_microbatches=num_microbatches,
    )
    for batch in batches(image_shape):
        state, _ = train_step(state, strategy.put_batch(batch))
    saved = strategy.to_saved(state)
    return jax.device_get((saved.params, saved.batch_stats))


# ResNet-8: batch norm, residual blocks and strided projections in the smallest CIFAR ResNet.
MODELS = [("lenet5", (28, 28, 1)), ("resnet8", (16, 16, 3))]


@pytest.fixture(scope="module", params=MODELS, ids=[name for name, _ in MODELS])
def reference(request):
    name, shape = request.param
    one_device = parallel.JitStrategy(devices=jax.devices()[:1])
    return name, shape, train(one_device, name, shape)


def assert_close(got, want):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_eight_devices_with_jit_match_one_device(reference):
    name, shape, expected = reference
    assert len(jax.devices()) == 8
    assert_close(train(parallel.JitStrategy(), name, shape), expected)


def test_eight_devices_with_pmap_match_one_device(reference):
    name, shape, expected = reference
    assert_close(train(parallel.PmapStrategy(sync_batch_norm=True), name, shape), expected)


def test_sharded_parameters_match_replicated_ones(reference):
    name, shape, expected = reference
    sharded = parallel.JitStrategy(shard_params=True, min_shard_size=1)
    assert_close(train(sharded, name, shape), expected)


def test_gradient_accumulation_matches_the_whole_batch_without_batch_norm():
    shape = (28, 28, 1)
    one_device = parallel.JitStrategy(devices=jax.devices()[:1])
    assert_close(
        train(parallel.JitStrategy(), "lenet5", shape, num_microbatches=2),
        train(one_device, "lenet5", shape),
    )


def test_batch_that_does_not_divide_across_devices_is_refused():
    with pytest.raises(ValueError, match="multiple of 8"):
        parallel.check_batch_size(12, 8)


def test_fsdp_sharding_splits_large_arrays_only():
    mesh = parallel.make_mesh()
    assert parallel.fsdp_sharding(mesh, (4000, 120)).spec == parallel.PartitionSpec("data", None)
    assert parallel.fsdp_sharding(mesh, (400, 120)).spec == parallel.PartitionSpec()
    assert parallel.fsdp_sharding(mesh, (3, 3, 64, 512)).spec == parallel.PartitionSpec(
        None, None, None, "data"
    )
    assert parallel.fsdp_sharding(mesh, (6,)).spec == parallel.PartitionSpec()


def test_run_once_gives_the_initial_state_of_a_fully_optimised_compile():
    """run_once lowers LLVM's optimisation level to compile initialisers faster; the values
    must be those of a compile at XLA's highest level (3), bit for bit."""
    model = models.create("lenet5", num_classes=10)
    create = functools.partial(
        state_lib.create, model, optax.adam(1e-3), (1, 28, 28, 1), jax.random.PRNGKey(3)
    )
    fast = parallel.run_once(create)
    optimised = jax.jit(create).lower().compile({"xla_backend_optimization_level": 3})()
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(optimised), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_trial_steps_train_a_copy_of_the_state_and_leave_the_run_s_own():
    strategy = parallel.JitStrategy(devices=jax.devices()[:1])
    model = models.create("lenet5", num_classes=10)
    create = functools.partial(
        state_lib.create, model, optax.sgd(0.05), (1, 28, 28, 1), jax.random.PRNGKey(0)
    )
    state = strategy.create_state(create)
    before = jax.tree.map(np.asarray, state.params)
    reads = []

    def first_batch():
        reads.append(1)
        return next(batches((28, 28, 1), batch_size=8))

    build = parallel.trial_steps(
        strategy,
        step.train_step,
        state,
        first_batch,
        lambda plans: model,
        loss_and_metrics=tasks.get("classification").loss_and_metrics,
    )
    runs = [build(None), build(None)]  # two variants (here both XLA's convolutions)
    losses = [float(np.asarray(run()["loss"][0])) for run in runs * 3]
    # The steps share one state, so the loss on the one batch falls from call to call; the
    # batch is read once; the run's own state is neither donated nor changed.
    assert losses[-1] < losses[0] and len(reads) == 1
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, np.asarray(b))
