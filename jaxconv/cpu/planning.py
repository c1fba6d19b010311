"""Choosing each convolution's formulations by measuring them on this machine.

    plans = planning.plan(forward, variables, images, path=workdir / "conv_plans.json")
    model = model.clone(convolution=fast_conv.PlannedConvolution.of(plans))

`forward(convolution, *args)` is the network with every convolution computed by
`convolution` (a model's `convolution` field). `plan` traces it abstractly to find its 2-D
convolutions, then, for each shape not already in a plan file, times every formulation of the
forward pass, the input gradient and the kernel gradient (jaxconv.cpu.fast_conv) on random
data of that shape and keeps the fastest of each. Products timed alone can mislead about a
whole network (what XLA fuses or overlaps around a convolution changes with its formulation),
so the training step (or the gradient of the network's outputs) is then timed side by side in
up to six variants (`VARIANTS`), and the fastest, judged round by round, is kept.

The run's file keeps its choices, so a resumed run computes exactly what the first one did. A
machine-wide file (`cache_path()`) gives later runs of the same shapes the same choices
without measuring again; it is named for the CPU, the jax and jaxlib versions, XLA_FLAGS and
the allocator setting it was measured under, so a home folder shared by different machines
never hands one machine's choices to another. On several processes, process 0's choices are
used everywhere (the programs must be identical).
"""

import fcntl
import functools
import hashlib
import json
import os
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.cpu import fast_conv
from jaxconv.cpu.fast_conv import FORWARD, INPUT_GRAD, KERNEL_GRAD, Geometry, Plan
from jaxconv.errors import DataError, StorageError, WorkdirError

ROLES = ("forward", "input_grad", "kernel_grad")
# Each formulation is timed until it has taken this long in total (at least once, at most
# MAX_REPEATS times, in turns with the others): enough to rank formulations that differ by
# more than a few percent. Before that, warm-up calls in turns until each has taken as long
# again; one that took more than MEASURE_DROP_ABOVE times the fastest's time in the best of
# these is not timed further. A formulation's first calls can each take several times its
# time, so one call alone, or a tighter bound, would pass fast formulations over.
MEASURE_SECONDS = 0.02
MAX_REPEATS = 3
MEASURE_DROP_ABOVE = 4.0
# Raised when the way products are timed changes, so that plans timed the old way are
# measured again. 2: judged on the best of warm-up calls, not on one, and dropped at 4x, not 2x.
TIMING_REVISION = 2
# The training step (or the network's gradient) is timed in rounds, the variants taking
# turns in each (so a machine whose speed drifts slows them alike), until each has taken
# NETWORK_SECONDS (at least NETWORK_ROUNDS rounds, at most NETWORK_MAX_ROUNDS); each round's
# times are divided by that round's fastest and the variant with the lowest median of these
# wins. The variants worth telling apart differ by a few percent, about as much as a shared
# machine's speed moves between rounds, which rounds in a fixed order compared by their
# median seconds cannot tell apart.
NETWORK_ROUNDS = 5
NETWORK_MAX_ROUNDS = 30
NETWORK_SECONDS = 10.0
# A variant 1.5 times as slow as the fastest in its warm-up calls is not timed further: the
# choices that matter differ by less, and U-Net's gradient takes a second or more. The
# warm-up calls, in turns, go on until each variant has taken NETWORK_WARM_SECONDS (one call
# of a U-Net step, a hundred of a LeNet-5 step), and the best of them is compared: a single
# call of a few milliseconds can take twice its time and drop the fastest variant.
NETWORK_DROP_ABOVE = 1.5
NETWORK_WARM_SECONDS = 0.5
# Part of each network's name in the plan files: a new way of checking networks checks them
# again, while the products' own plans are kept.
NETWORK_CHECK_REVISION = 3
# What the network-level check chooses among: every planned formulation ('planned'); oneDNN's
# wherever it can compute a product and XLA's elsewhere, since products timed alone on a busy
# machine can rank a library kernel below XLA's by chance, with the layers planned as
# Winograd's left so ('onednn': they do fewer multiplications, not the same ones faster) or
# not ('onednn_direct'); oneDNN's only where jaxlib's call computes it inside the program,
# Winograd's left so ('onednn_in_program': each host call has a fixed cost, which small
# networks feel, and its threads compete with XLA's where the network gives XLA other work
# beside it); as 'onednn' with oneDNN's library computing every input gradient it can, where
# 'onednn' has jaxlib's call on the transposed convolution ('onednn_library': XLA runs a
# layer's input gradient beside its kernel gradient, a library call, and jaxlib's threads and
# the library's then compete for the cores, so a step can be faster with the library's input
# gradient though timed alone jaxlib's call is); XLA's convolution alone ('xla').
VARIANTS = ("planned", "onednn", "onednn_library", "onednn_direct", "onednn_in_program", "xla")

Key = tuple[Geometry, str]  # (geometry, dtype name)


def find_convolutions(fn: Callable, *args, **kwargs) -> list[Key]:
    """The (geometry, dtype name) of each planable convolution `fn(convolution, *args)`
    traces, sorted."""
    recorder = fast_conv.ConvolutionRecorder()
    jax.eval_shape(functools.partial(fn, recorder), *args, **kwargs)
    return sorted(recorder.found, key=lambda key: (key[0].key, key[1]))


def _role_function(role: str, formulation: str, geometry: Geometry):
    """(function of two arrays, their shapes) for one product of `geometry`."""
    batch, height, width, channels = geometry.input_shape
    out_height, out_width = geometry.output_size
    output_shape = (batch, out_height, out_width, geometry.kernel_shape[-1])
    if role == "forward":
        fn = FORWARD[formulation]
        return (lambda x, w: fn(x, w, geometry)), (geometry.input_shape, geometry.kernel_shape)
    if role == "input_grad":
        fn = INPUT_GRAD[formulation]
        return (lambda dy, w: fn(dy, w, geometry)), (output_shape, geometry.kernel_shape)
    fn = KERNEL_GRAD[formulation]
    return (lambda x, dy: fn(x, dy, geometry)), (geometry.input_shape, output_shape)


def _layer_function(plan: Plan, geometry: Geometry):
    """(function of three arrays, their shapes): the layer's output and both gradients, as a
    training step computes them with `plan`."""

    def layer(x, w, dy):
        y, vjp = jax.vjp(lambda x, w: fast_conv.planned_conv(x, w, geometry, plan), x, w)
        return (y, *vjp(dy))

    batch = geometry.input_shape[0]
    output_shape = (batch, *geometry.output_size, geometry.kernel_shape[-1])
    return layer, (geometry.input_shape, geometry.kernel_shape, output_shape)


def _in_turns(
    calls: dict[str, Callable[[], object]],
    seconds: float,
    min_rounds: int,
    max_rounds: int,
    drop_above: float = 2.0,
    warm_seconds: float = 0.0,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Times `calls` (name: function of no arguments that runs to completion) in turns: a
    first call each (compiling, creating oneDNN's primitives); warm-up calls in turns until
    each has taken `warm_seconds` (one each at least); a call whose best warm-up took more
    than `drop_above` times the fastest's is not timed again; then rounds in which each
    remaining call runs once, in an order that rotates from round to round, so a drift in the
    machine's speed (a shared machine's drifts over seconds) meets every call alike rather
    than the ones timed during a slow spell. Rounds continue until each call has taken
    `seconds` in all (at least `min_rounds`, at most `max_rounds`). Returns (each call's best
    warm-up seconds, each round's {name: seconds})."""

    def timed(name: str) -> float:
        start = time.perf_counter()
        jax.block_until_ready(calls[name]())
        return time.perf_counter() - start

    for name in calls:
        timed(name)
    warm_ups = {name: [timed(name)] for name in calls}
    while warming := [name for name, times in warm_ups.items() if sum(times) < warm_seconds]:
        for name in warming:
            warm_ups[name].append(timed(name))
    warm = {name: min(times) for name, times in warm_ups.items()}
    fastest = min(warm.values())
    kept = [name for name in calls if warm[name] <= drop_above * fastest]
    spent = dict.fromkeys(kept, 0.0)
    rounds = []
    while len(rounds) < max_rounds and (
        len(rounds) < min_rounds or any(spent[name] < seconds for name in kept)
    ):
        shift = len(rounds) % len(kept)
        rounds.append({name: timed(name) for name in kept[shift:] + kept[:shift]})
        for name, elapsed in rounds[-1].items():
            spent[name] += elapsed
    return warm, rounds


def _side_by_side(functions: dict[str, tuple[Callable, tuple]], dtype: str) -> dict[str, float]:
    """Best-of-a-few seconds of each of `functions` (name: (function, argument shapes)) on
    random arrays, each compiled alone, warmed up and then timed in turns (`_in_turns`), each
    for MEASURE_SECONDS (the timing in at most MAX_REPEATS rounds)."""
    rng = np.random.default_rng(0)
    with jax.ensure_compile_time_eval():  # runs for real even when called while tracing
        arrays: dict[tuple, jax.Array] = {}
        calls = {}
        for name, (fn, shapes) in functions.items():
            args = [
                arrays.setdefault(tuple(shape), jnp.asarray(rng.standard_normal(shape), dtype))
                for shape in shapes
            ]
            compiled = jax.jit(fn).lower(*args).compile()
            calls[name] = functools.partial(compiled, *args)
        warm, rounds = _in_turns(
            calls, MEASURE_SECONDS, 1, MAX_REPEATS, MEASURE_DROP_ABOVE, MEASURE_SECONDS
        )
    return {name: min([warm[name], *(r[name] for r in rounds if name in r)]) for name in calls}


def fastest_in_rounds(rounds: list[dict[str, float]]) -> tuple[str, dict[str, float]]:
    """(the fastest name, each name's median relative time) from rounds of {name: seconds}
    in which every name was timed: each round's times are divided by that round's fastest, so
    a round run in a slow spell weighs like any other, and the lowest median wins."""
    relative = {name: [] for name in rounds[0]}
    for times in rounds:
        fastest = min(times.values())
        for name, seconds in times.items():
            relative[name].append(seconds / fastest)
    medians = {name: float(np.median(values)) for name, values in relative.items()}
    return min(medians, key=medians.get), medians


def time_formulation(role: str, formulation: str, geometry: Geometry, dtype: str) -> float:
    """Best-of-a-few seconds of one product of `geometry` computed by `formulation`."""
    function = _role_function(role, formulation, geometry)
    return _side_by_side({formulation: function}, dtype)[formulation]


def measure(geometry: Geometry, dtype: str, partitioned: bool = False) -> tuple[Plan, dict]:
    """The fastest formulation of each product, and every measured time in seconds.

    Products timed alone can mislead (what one formulation leaves in memory, another reads),
    so a plan that is not all XLA's is kept only if the whole layer, output and both
    gradients, is faster with it than with XLA's convolution. A layer whose three products
    a Winograd formulation computes in less time in all is planned with it for all three;
    whether the network is faster so, the network-level check decides ('onednn' against
    'onednn_direct').
    """
    choice, timings = {}, {}
    for role, options in fast_conv.candidates(geometry, dtype, partitioned).items():
        functions = {name: _role_function(role, name, geometry) for name in options}
        timings[role] = _side_by_side(functions, dtype)
        direct = {name: t for name, t in timings[role].items() if name not in fast_conv.WINOGRAD}
        choice[role] = min(direct, key=direct.get)
    plan = Plan(**choice)
    if plan != fast_conv.XLA_PLAN:
        layers = {"xla": fast_conv.XLA_PLAN, "planned": plan}
        timings["layer"] = _side_by_side(
            {name: _layer_function(chosen, geometry) for name, chosen in layers.items()}, dtype
        )
        if timings["layer"]["planned"] >= timings["layer"]["xla"]:
            plan = fast_conv.XLA_PLAN
    # Winograd's for all three products or none: the forward pass and the kernel gradient
    # then share the transformed input tiles, which products timed alone each pay for.
    totals = {
        name: sum(timings[role][name] for role in ROLES)
        for name in fast_conv.WINOGRAD
        if all(name in timings[role] for role in ROLES)
    }
    if totals and min(totals.values()) < sum(timings[role][getattr(plan, role)] for role in ROLES):
        fastest = min(totals, key=totals.get)
        plan = Plan(fastest, fastest, fastest)
    return plan, timings


def restrict(plans: dict[Key, Plan], variant: str, partitioned: bool = False) -> dict[Key, Plan]:
    """`plans` as `variant` (one of VARIANTS) computes them: 'planned' as they are; 'onednn'
    with oneDNN's formulation for every product it can compute, whatever was chosen, except
    the products planned as Winograd's or as oneDNN's library primitive, and XLA's for the
    others; 'onednn_direct' the same without Winograd's; 'onednn_in_program' as 'onednn' where
    jaxlib's call computes it (`fast_conv.onednn_routes`), Winograd's left as jaxconv's own;
    'onednn_library' as 'onednn' with oneDNN's backward-data primitive for every input
    gradient 'onednn' gives jaxlib's call; 'xla' with XLA's everywhere."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown planning variant {variant!r}; known: {', '.join(VARIANTS)}")
    if variant == "planned":
        return dict(plans)
    if variant == "onednn_library":
        restricted = restrict(plans, "onednn", partitioned)
        for key, plan in restricted.items():
            offered = fast_conv.candidates(*key, partitioned)["input_grad"]
            if plan.input_grad == "onednn" and "onednn_library" in offered:
                restricted[key] = Plan(plan.forward, "onednn_library", plan.kernel_grad)
        return restricted
    kept = {
        "onednn": ("jaxlib", "library"),
        "onednn_direct": ("jaxlib", "library"),
        "onednn_in_program": ("jaxlib",),
        "xla": (),
    }
    # Left as planned: Winograd's formulations, jaxconv's own (inside the program) in 'onednn'
    # and 'onednn_in_program', oneDNN's (a host call) in 'onednn'; and oneDNN's backward-data
    # primitive where the plan chose it over jaxlib's call, in the variants with host calls.
    kept_as_planned = {
        "onednn": {*fast_conv.WINOGRAD, "onednn_winograd", "onednn_library"},
        "onednn_direct": {"onednn_library"},
        "onednn_in_program": set(fast_conv.WINOGRAD),
        "xla": set(),
    }[variant]
    restricted = {}
    for key, plan in plans.items():
        routes = fast_conv.onednn_routes(*key, partitioned) if kept[variant] else {}
        choice = {}
        for role in ROLES:
            if getattr(plan, role) in kept_as_planned:
                choice[role] = getattr(plan, role)
            else:
                choice[role] = "onednn" if routes.get(role) in kept[variant] else "xla"
        restricted[key] = Plan(**choice)
    return restricted


def _gradient_function(fn: Callable, kwargs: dict, convolution=jax.lax.conv_general_dilated):
    """The gradient, with respect to the first argument, of the sum of the floating outputs
    of `fn(convolution, ...)`: every convolution of `fn` forward and backward, as a training
    step runs them."""

    def gradient(first, *rest):
        def total(first):
            outputs = jax.tree.leaves(fn(convolution, first, *rest, **kwargs))
            return sum(
                jnp.sum(leaf.astype(jnp.float32))
                for leaf in outputs
                if jnp.issubdtype(leaf.dtype, jnp.floating)
            )

        return jax.grad(total)(first)

    return gradient


def measure_network(
    fn: Callable,
    args: tuple,
    kwargs: dict,
    plans: dict[Key, Plan],
    training_step: Callable[[dict[Key, Plan]], Callable[[], object]] | None = None,
    partitioned: bool = False,
):
    """(the fastest of VARIANTS, each variant's median seconds over the rounds, or its
    warm-up seconds where it was too slow to be timed further). What is timed is
    `training_step(plans)()`, one training step computed with those plans, when the caller
    gives it, else the gradient of `fn`'s outputs. Variants that compute the same thing as an
    earlier one are not timed; the others take turns (`_in_turns`) and the fastest is the one
    `fastest_in_rounds` names."""
    variants: dict[str, dict[Key, Plan]] = {}
    # A variant that computes what an earlier one does is that one, and not timed again.
    for name in (
        "xla",
        "planned",
        "onednn",
        "onednn_library",
        "onednn_direct",
        "onednn_in_program",
    ):
        restricted = restrict(plans, name, partitioned)
        if restricted not in variants.values():
            variants[name] = restricted
    if len(variants) == 1:
        return next(iter(variants)), {}
    if training_step is not None:
        calls = {name: training_step(chosen) for name, chosen in variants.items()}
    else:
        calls = _gradient_calls(fn, args, kwargs, variants, partitioned)
    warm, rounds = _in_turns(
        calls,
        NETWORK_SECONDS,
        NETWORK_ROUNDS,
        NETWORK_MAX_ROUNDS,
        NETWORK_DROP_ABOVE,
        NETWORK_WARM_SECONDS,
    )
    fastest, _ = fastest_in_rounds(rounds)
    medians = {name: float(np.median([r[name] for r in rounds])) for name in rounds[0]}
    return fastest, {**warm, **medians}


def _gradient_calls(fn, args, kwargs, variants, partitioned) -> dict[str, Callable[[], object]]:
    """For each variant, a function of no arguments computing the gradient of `fn`'s
    outputs with its plans: the check's stand-in for a training step."""
    rng = np.random.default_rng(0)

    def concrete(leaf):
        """Every argument as an array of this process's default device: the check runs on
        process 0 alone, so it must not touch arrays spread over other processes (those, and
        abstract ones, become random arrays of their shape; the timing does not need them)."""
        if isinstance(leaf, jax.Array) and leaf.is_fully_addressable:
            return jnp.asarray(np.asarray(leaf))
        if isinstance(leaf, jax.ShapeDtypeStruct | jax.Array):
            return jnp.asarray(rng.standard_normal(leaf.shape), leaf.dtype)
        return leaf

    args = jax.tree.map(concrete, args)
    calls = {}
    for name, chosen in variants.items():
        convolution = fast_conv.PlannedConvolution.of(chosen, partitioned)
        gradient = jax.jit(_gradient_function(fn, kwargs, convolution))
        calls[name] = functools.partial(gradient.lower(*args).compile(), *args)
    return calls


def program_fingerprint(fn: Callable, args: tuple, kwargs: dict) -> str:
    """Names the program whose gradient the network-level check times, by the text of its
    jaxpr with every convolution XLA's: the layers around the convolutions decide that check
    as much as the convolutions do (what XLA fuses into a formulation's products, what runs
    beside oneDNN's calls), so networks with the same convolutions but other pooling,
    activations or loss are checked apart."""
    jaxpr = jax.make_jaxpr(_gradient_function(fn, kwargs))(*args)
    return hashlib.sha256(str(jaxpr).encode()).hexdigest()[:16]


def _network_key(plans: dict[Key, Plan], program: str, timed: str) -> str:
    """Names a network by its program (`program_fingerprint`), its convolutions and their
    per-shape choices, what the check timed ('training step' or 'gradient') and the way
    networks are checked (NETWORK_CHECK_REVISION)."""
    entries = sorted(
        [_file_key(key), *(getattr(plan, role) for role in ROLES)] for key, plan in plans.items()
    )
    named = [program, entries, timed, NETWORK_CHECK_REVISION]
    return hashlib.sha256(json.dumps(named).encode()).hexdigest()[:16]


def machine(partitioned: bool = False) -> dict[str, str]:
    """What a measurement's outcome depends on besides the shape: the CPU, the software, the
    XLA flags (which change the compiled kernels) and the allocator setting (without it, every
    buffer a step allocates anew is faulted in page by page, which weighs on some
    formulations more than on others)."""
    from jaxconv.cpu import platform

    facts = {
        "cpu": platform.cpu_model(),
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    if platform.freed_memory_kept():
        facts["malloc"] = "freed memory kept"
    if partitioned:  # choices among fewer formulations: a file of its own
        facts["program"] = "partitioned over devices"
    return facts


def cache_path(partitioned: bool = False) -> pathlib.Path:
    """This machine's plan file: $JAXCONV_CACHE_DIR (default ~/.cache/jaxconv)/
    conv_plans-<digest of `machine()`>.json."""
    root = os.environ.get("JAXCONV_CACHE_DIR") or pathlib.Path.home() / ".cache" / "jaxconv"
    facts = machine(partitioned)
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
    return pathlib.Path(root) / f"conv_plans-{digest}.json"


def _file_key(key: Key) -> str:
    return f"{key[0].key}|{key[1]}"


def read_file(path: pathlib.Path) -> dict[str, Plan]:
    """The plans a plan file holds, by `_file_key`; {} when there is none."""
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())["plans"]
        return {
            name: Plan(**{role: entry[role] for role in ROLES}) for name, entry in entries.items()
        }
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"convolution plan file {path} is unreadable ({error}); delete it to measure again."
        ) from None


def _cached_seconds(path: pathlib.Path) -> dict[str, dict]:
    """The measured times a plan file keeps beside its plans, by `_file_key`."""
    try:
        entries = json.loads(path.read_text())["plans"]
        return {name: entry["seconds"] for name, entry in entries.items() if "seconds" in entry}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_networks(path: pathlib.Path) -> dict[str, str]:
    """The network-level choices a plan file holds, by `_network_key`."""
    try:
        networks = json.loads(path.read_text()).get("networks", {})
    except (OSError, ValueError):
        return {}
    return {key: value for key, value in networks.items() if value in VARIANTS}


def write_file(
    path: pathlib.Path,
    plans: dict[str, Plan],
    timings: dict[str, dict],
    networks: dict[str, str] | None = None,
    partitioned: bool = False,
) -> None:
    entries = {}
    for name, plan in sorted(plans.items()):
        entries[name] = {role: getattr(plan, role) for role in ROLES}
        if name in timings:
            entries[name]["seconds"] = timings[name]
    document = {
        **machine(partitioned),
        "formulations": _formulations(),  # what the choices were made among
        "plans": entries,
        "networks": dict(sorted((networks or {}).items())),
    }
    temporary = path.with_suffix(".tmp")
    for each in (path, temporary):  # writing through a link would overwrite its target
        if each.is_symlink():
            raise WorkdirError(f"{each} is a symbolic link; remove it to let jaxconv write there.")
    try:
        temporary.write_text(json.dumps(document, indent=1))
        os.replace(temporary, path)  # never a half-written file
    except OSError as error:
        raise StorageError(
            f"could not write the convolution plans {path} ({error.strerror or error})."
        ) from error


def _agree_across_processes(keys: list[Key], plans: dict[Key, Plan]) -> dict[Key, Plan]:
    """Process 0's plans on every process: each formulation sent as its index."""
    from jax.experimental import multihost_utils

    codes = np.array(
        [
            [fast_conv.FORMULATIONS[role].index(getattr(plans[k], role)) for role in ROLES]
            for k in keys
        ],
        np.int32,
    ).reshape(len(keys), len(ROLES))
    codes = np.asarray(multihost_utils.broadcast_one_to_all(codes))
    return {
        key: Plan(**{role: fast_conv.FORMULATIONS[role][code] for role, code in zip(ROLES, row)})
        for key, row in zip(keys, codes)
    }


def plan(
    fn: Callable,
    *args,
    path: str | pathlib.Path | None = None,
    use_cache: bool = True,
    log: Callable[[str], None] | None = None,
    partitioned: bool = False,
    training_step: Callable[[dict[Key, Plan]], Callable[[], object]] | None = None,
    **kwargs,
) -> dict[Key, Plan]:
    """Plans for every convolution `fn(convolution, *args, **kwargs)` traces (see the module
    docstring).

    Each shape's plan comes from `path` (the run's own file) if it is there, else from the
    machine's file (`use_cache`), else is measured; then, unless the run's file held them all,
    the network-level check (`measure_network`, or its earlier outcome in the machine's file)
    decides which of them are used. `path` and the machine's file are written with every plan
    and outcome they lack; the run's file holds the plans as used.

    `partitioned`: the program runs as one that XLA partitions over several devices (jit over
    a mesh), where oneDNN's calls are not offered (`fast_conv.candidates`); its choices go in
    a machine file of their own.

    `training_step`: given plans, a function of no arguments that runs one training step
    computed with them. The network-level check then times the step itself, where it would
    otherwise time the gradient of `fn`'s outputs, which can rank two variants the other way
    round. It is used on one process only: the check runs on process 0 alone, where a step
    spanning several processes cannot run.
    """
    if jax.process_count() > 1:
        training_step = None
    return _plan(fn, args, kwargs, path, use_cache, log, training_step, partitioned)


def _plan(fn, args, kwargs, path, use_cache, log, training_step, partitioned) -> dict[Key, Plan]:
    path = None if path is None else pathlib.Path(path)
    keys = find_convolutions(fn, *args, **kwargs)
    if not keys:
        return {}
    own = read_file(path) if path is not None else {}
    cached = _read_cache(partitioned) if use_cache else {}
    plans, timings = {}, {}
    started = time.perf_counter()
    for key in keys:
        name = _file_key(key)
        if name in own or name in cached:
            plans[key] = own.get(name, cached.get(name))
        else:
            plans[key], timings[name] = measure(*key, partitioned)
    measuring_seconds = time.perf_counter() - started
    if use_cache and jax.process_index() == 0 and set(map(_file_key, keys)) - set(cached):
        plans = _merge_into_cache(plans, timings, partitioned)
    networks, network_seconds = {}, {}
    if jax.process_index() == 0 and any(_file_key(key) not in own for key in keys):
        timed = "training step" if training_step is not None else "gradient"
        network = _network_key(plans, program_fingerprint(fn, args, kwargs), timed)
        variant = _cached_networks(partitioned).get(network) if use_cache else None
        if variant is None:
            variant, network_seconds = measure_network(
                fn, args, kwargs, plans, training_step, partitioned
            )
            if use_cache:
                variant = _merge_network_into_cache(network, variant, partitioned)
        networks[network] = variant
        restricted = restrict(plans, variant, partitioned)
        plans = {key: plans[key] if _file_key(key) in own else restricted[key] for key in keys}
    if jax.process_count() > 1:
        plans = _agree_across_processes(keys, plans)
    named = {_file_key(key): value for key, value in plans.items()}
    if jax.process_index() == 0 and path is not None and set(named) - set(own):
        write_file(path, {**named, **own}, timings, networks, partitioned)
    if log is not None:
        faster = sum(value != fast_conv.XLA_PLAN for value in plans.values())
        log(
            f"Convolutions: {len(keys)} shapes, {faster} computed faster than by XLA alone; "
            f"{len(timings)} measured in {measuring_seconds:.1f} s, the others "
            f"read from {path if path is not None and own else cache_path(partitioned)}."
        )
        if network_seconds:
            times = ", ".join(
                f"{name} {_duration(seconds)}" for name, seconds in network_seconds.items()
            )
            log(
                f"Convolutions, the network's {timed} (median of rounds in turns): {times}; "
                f"using {next(iter(networks.values()))!r} (checked in "
                f"{time.perf_counter() - started - measuring_seconds:.1f} s)."
            )
    return plans


def _duration(seconds: float) -> str:
    """Four significant figures, in milliseconds below a second: a small network's variants
    differ by a few percent of a few milliseconds."""
    return f"{seconds * 1e3:.4g} ms" if seconds < 1 else f"{seconds:.4g} s"


def _read_cache(partitioned: bool = False) -> dict[str, Plan]:
    """The machine's plans, if they were chosen among today's formulations; a file written
    before a formulation was added (or changed: `fast_conv.REVISION`) holds choices made
    without it, which are measured again; so does one timed another way (TIMING_REVISION)."""
    path = cache_path(partitioned)
    try:
        if json.loads(path.read_text()).get("formulations") != _formulations():
            return {}
        return read_file(path)
    except (OSError, ValueError):  # a cache that cannot be read is measured again
        return {}


def _cached_networks(partitioned: bool = False) -> dict[str, str]:
    """The machine's network-level outcomes, under the same condition as its plans."""
    path = cache_path(partitioned)
    try:
        if json.loads(path.read_text()).get("formulations") != _formulations():
            return {}
    except (OSError, ValueError):
        return {}
    return read_networks(path)


def _formulations() -> dict:
    """What the plans were chosen among: each role's formulations, their revision, the
    network-level check's variants, and how products are timed."""
    return {
        "revision": fast_conv.REVISION,
        "timing": TIMING_REVISION,
        **{role: list(fast_conv.FORMULATIONS[role]) for role in ROLES},
        "variants": list(VARIANTS),
    }


def _merge_into_cache(
    plans: dict[Key, Plan], timings: dict[str, dict], partitioned: bool
) -> dict[Key, Plan]:
    """Writes the measured plans into the machine's file and returns `plans`, with the plan of
    any shape another run wrote there meanwhile in place of this run's measurement: every run
    of a shape on this machine then computes it the same way (the first measurement stays)."""
    merged = _update_cache(plans, timings, {}, partitioned)
    return plans if merged is None else merged[0]


def _merge_network_into_cache(network: str, variant: str, partitioned: bool) -> str:
    """Writes a network-level outcome into the machine's file; returns the one kept there (an
    earlier run's, if another run wrote it meanwhile)."""
    merged = _update_cache({}, {}, {network: variant}, partitioned)
    return variant if merged is None else merged[1][network]


def _update_cache(
    plans: dict[Key, Plan], timings: dict[str, dict], networks: dict[str, str], partitioned: bool
):
    """Merges into the machine's file, entries already there winning, as one locked step:
    (plans, networks) as kept, or None when the file cannot be written."""
    path = cache_path(partitioned)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # read, merge and write as one step
            cached = _read_cache(partitioned)
            cached_networks = _cached_networks(partitioned)
            plans = {key: cached.get(_file_key(key), value) for key, value in plans.items()}
            networks = {key: cached_networks.get(key, value) for key, value in networks.items()}
            named = {_file_key(key): value for key, value in plans.items()}
            timings = {**timings, **_cached_seconds(path)} if cached else timings
            networks = {**networks, **cached_networks}
            write_file(path, {**named, **cached}, timings, networks, partitioned)
    except OSError:
        return None  # an unwritable cache costs only a measurement next time
    return plans, networks
