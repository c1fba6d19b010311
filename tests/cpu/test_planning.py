"""Planning: measured choices, kept in the run's file and the machine's, reused unmeasured."""

import json
import time

import jax
import jax.numpy as jnp
import pytest
from jax.experimental import io_callback

from jaxconv import layers
from jaxconv.cpu import fast_conv, planning


def two_convolutions(convolution, x):
    """A network of two convolutions, each computed by `convolution` (planning's convention)."""
    model = layers.Conv(4, (3, 3), strides=2, conv_general_dilated=convolution)
    variables = model.init(jax.random.PRNGKey(0), x)
    y = model.apply(variables, x)
    head = layers.Conv(2, (1, 1), conv_general_dilated=convolution)
    return head.init_with_output(jax.random.PRNGKey(1), y)[0]


IMAGES = jax.ShapeDtypeStruct((4, 12, 12, 3), jnp.float32)


class SimulatedClock:
    """Stands in for the `time` module in planning: a call that 'sleeps' moves the clock
    by exactly that much, so a test of the timing logic does not depend on a busy machine's
    real sleeps (a 1 ms sleep can take 30 ms on a loaded CI runner)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    simulated = SimulatedClock()
    monkeypatch.setattr(planning, "time", simulated)
    return simulated


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCONV_CACHE_DIR", str(tmp_path / "cache"))
    return planning.cache_path()


@pytest.mark.parametrize("outcome", [None, *planning.VARIANTS])
def test_every_convolution_is_planned_with_its_fastest_formulations(
    tmp_path, cache, monkeypatch, outcome
):
    """Each shape's plan as the network-level check keeps it: that check's own outcome (None),
    or each of its possible outcomes forced."""
    if outcome is not None:
        monkeypatch.setattr(planning, "measure_network", lambda *args: (outcome, {}))
    messages = []
    plans = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json", log=messages.append)
    geometries = sorted(key[0].kernel_shape for key in plans)
    assert geometries == [(1, 1, 4, 2), (3, 3, 3, 4)]
    document = json.loads((tmp_path / "run.json").read_text())
    entries = document["plans"]
    assert len(entries) == 2
    # The run's file holds the plans as used: the per-shape choices as the network-level
    # check's outcome keeps them.
    (variant,) = document["networks"].values()
    assert variant in planning.VARIANTS and outcome in (None, variant)
    for key in plans:
        entry = entries[f"{key[0].key}|{key[1]}"]
        assert plans[key] == fast_conv.Plan(**{role: entry[role] for role in planning.ROLES})
        routes = fast_conv.onednn_routes(*key)
        for role in planning.ROLES:
            planned = _fastest(entry["seconds"], role)
            # What each variant leaves as planned: Winograd's (fewer multiplications), and
            # oneDNN's library primitives where the variant allows host calls.
            left_as_planned = {
                "onednn": {*fast_conv.WINOGRAD, "onednn_winograd", "onednn_library"},
                "onednn_library": {*fast_conv.WINOGRAD, "onednn_winograd", "onednn_library"},
                "onednn_direct": {"onednn_library"},
                "onednn_in_program": set(fast_conv.WINOGRAD),
                "xla": set(),
            }
            if variant == "planned" or planned in left_as_planned[variant]:
                expected = planned
            elif variant in ("onednn", "onednn_direct"):
                expected = "onednn" if routes[role] else "xla"
            elif variant == "onednn_library":
                expected = "onednn" if routes[role] else "xla"
                offered = fast_conv.candidates(*key)[role]
                if role == "input_grad" and expected == "onednn" and "onednn_library" in offered:
                    expected = "onednn_library"
            elif variant == "onednn_in_program":
                expected = "onednn" if routes[role] == "jaxlib" else "xla"
            else:
                expected = "xla"
            assert entry[role] == expected, (variant, role, entry)
    # The machine's file keeps the measured times too, past the network-level outcome's write.
    cached = json.loads(cache.read_text())
    assert cached["networks"] and all("seconds" in e for e in cached["plans"].values())
    assert "2 shapes" in messages[0] and "2 measured" in messages[0]


def _fastest(seconds: dict, role: str) -> str:
    """The formulation a shape's measured times choose for `role`: the fastest direct one,
    unless the whole layer with the chosen ones was not faster than XLA's; the fastest
    Winograd formulation if its three products took less time in all."""
    layer = seconds.get("layer")
    chosen = {}
    for each in planning.ROLES:
        direct = {n: t for n, t in seconds[each].items() if n not in fast_conv.WINOGRAD}
        rejected = layer and layer["planned"] >= layer["xla"]
        chosen[each] = "xla" if rejected else min(direct, key=direct.get)
    totals = {
        name: sum(seconds[each][name] for each in planning.ROLES)
        for name in fast_conv.WINOGRAD
        if all(name in seconds[each] for each in planning.ROLES)
    }
    direct_total = sum(seconds[each][chosen[each]] for each in planning.ROLES)
    if totals and min(totals.values()) < direct_total:
        return min(totals, key=totals.get)
    return chosen[role]


def test_plans_are_read_back_not_measured_again(tmp_path, cache, monkeypatch):
    first = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")

    def no_measuring(*args):
        raise AssertionError("measured again")

    monkeypatch.setattr(planning, "measure", no_measuring)
    # From the run's own file, and (a new run) from the machine's.
    assert planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json") == first
    assert planning.plan(two_convolutions, IMAGES, path=tmp_path / "new.json") == first
    assert (tmp_path / "new.json").exists()


@pytest.fixture
def measured(monkeypatch):
    """The (geometry, dtype) of every measurement made from here on."""
    keys = []
    real_measure = planning.measure
    monkeypatch.setattr(planning, "measure", lambda *key: keys.append(key) or real_measure(*key))
    return keys


@pytest.mark.parametrize(
    "written_before",
    [
        lambda formulations: formulations["forward"].remove("winograd"),  # it existed
        lambda formulations: formulations.update(revision=fast_conv.REVISION - 1),  # it changed
        lambda formulations: formulations["variants"].remove("onednn_in_program"),
    ],
    ids=["a formulation was added", "a formulation changed", "a network variant was added"],
)
def test_machine_plans_chosen_among_other_formulations_are_measured_again(
    tmp_path, cache, measured, written_before
):
    planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")
    document = json.loads(cache.read_text())
    written_before(document["formulations"])
    cache.write_text(json.dumps(document))
    measured.clear()
    planning.plan(two_convolutions, IMAGES, path=tmp_path / "new.json")
    assert len(measured) == 2
    # The run's own file is never second-guessed: a resumed run computes what it did.
    planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")
    assert len(measured) == 2


def test_plans_measured_on_another_machine_are_never_used_here(
    tmp_path, cache, monkeypatch, measured
):
    # A home folder shared by two CPUs, or one machine under other XLA flags or allocator
    # settings: each measures for itself and keeps its own file, and neither loses the other's
    # plans.
    first = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")
    measured.clear()
    from jaxconv.cpu import platform

    monkeypatch.setattr(platform, "cpu_model", lambda: "Another CPU (family 1 model 2)")
    other = planning.cache_path()
    assert other != cache and other.parent == cache.parent
    planning.plan(two_convolutions, IMAGES, path=tmp_path / "new.json")
    assert len(measured) == 2
    assert json.loads(other.read_text())["cpu"] == "Another CPU (family 1 model 2)"
    assert set(planning.read_file(cache)) == {planning._file_key(k) for k in first}
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    flags = planning.cache_path()
    assert flags not in (cache, other)
    # The allocator setting too (timed without it, every new buffer is faulted in).
    monkeypatch.setattr(platform, "_freed_memory_kept", not platform.freed_memory_kept())
    assert planning.cache_path() not in (cache, other, flags)


def test_the_runs_own_file_wins_over_the_machines(tmp_path, cache):
    plans = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")
    forced = {planning._file_key(key): fast_conv.Plan("taps", "col2im", "taps") for key in plans}
    planning.write_file(tmp_path / "run.json", forced, {})
    again = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")
    assert set(again.values()) == {fast_conv.Plan("taps", "col2im", "taps")}


def test_an_unreadable_plan_file_is_named_with_the_fix(tmp_path, cache):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="run.json is unreadable.*delete it"):
        planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")


def test_a_function_without_convolutions_needs_no_plan(tmp_path, cache):
    no_convolution = lambda convolution, x: x * 2  # noqa: E731
    assert planning.plan(no_convolution, IMAGES, path=tmp_path / "run.json") == {}
    assert not (tmp_path / "run.json").exists()


def test_a_plan_another_run_wrote_meanwhile_is_adopted(tmp_path, cache, monkeypatch):
    # Two runs measuring the same shapes at once must still compute them the same way.
    theirs = fast_conv.Plan("taps", "col2im", "taps")
    measure = planning.measure

    def measured_while_another_run_wrote(geometry, dtype, partitioned):
        name = planning._file_key((geometry, dtype))
        planning.write_file(cache, {**planning._read_cache(), name: theirs}, {})
        return measure(geometry, dtype, partitioned)

    monkeypatch.setattr(planning, "measure", measured_while_another_run_wrote)
    monkeypatch.setattr(planning, "measure_network", lambda *args: ("planned", {}))
    cache.parent.mkdir(parents=True)
    plans = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")
    assert set(plans.values()) == {theirs}
    assert set(planning.read_file(tmp_path / "run.json").values()) == {theirs}


@pytest.mark.parametrize("layer_planned,expected", [(2.0, "xla"), (0.5, "taps")])
def test_a_plan_is_kept_only_if_the_whole_layer_is_faster(monkeypatch, layer_planned, expected):
    geometry = fast_conv.Geometry((2, 8, 8, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))
    # Products alone: 'taps' wins the forward pass; the layer as a whole decides.
    every = {name for names in fast_conv.FORMULATIONS.values() for name in names}
    alone = dict.fromkeys(every, 3.0) | {"xla": 1.0, "taps": 0.5}
    plan, timings = _measure_with_times(
        monkeypatch, geometry, dict.fromkeys(planning.ROLES, alone), layer_planned
    )
    assert plan.forward == expected
    assert timings["layer"] == {"xla": 1.0, "planned": layer_planned}


def _measure_with_times(monkeypatch, geometry, alone: dict, layer_planned: float):
    """`measure` where each product takes `alone[role][formulation]` seconds, the whole layer
    1.0 with XLA's convolution and `layer_planned` with the plan."""
    monkeypatch.setattr(planning, "_role_function", lambda role, f, g: (_Tagged(role), None))
    monkeypatch.setattr(planning, "_layer_function", lambda plan, g: (_Tagged(plan), None))

    def side_by_side(functions, dtype):
        times = {}
        for name, (tagged, _) in functions.items():
            if tagged.tag in planning.ROLES:
                times[name] = alone[tagged.tag][name]
            else:
                times[name] = 1.0 if tagged.tag == fast_conv.XLA_PLAN else layer_planned
        return times

    monkeypatch.setattr(planning, "_side_by_side", side_by_side)
    return planning.measure(geometry, "float32")


class _Tagged:
    def __init__(self, tag):
        self.tag = tag


@pytest.mark.parametrize(
    "winograd4,layer_planned,expected",
    [
        # Three products: forward, input and kernel gradients; XLA's take 1.0 each, 'taps'
        # 0.5 (forward and kernel gradient only), F(2x2, 3x3) 0.9.
        ((0.8, 0.8, 0.8), 2.0, "winograd4"),  # 2.4 against XLA's 3.0 (the layer check's)
        ((0.8, 0.8, 0.8), 0.5, "taps"),  # 2.4 against 0.5 + 1.0 + 0.5
        ((0.3, 0.9, 0.9), 0.5, "taps"),  # one fast product is not enough: 2.1 against 2.0
        ((0.3, 0.8, 0.3), 0.5, "winograd4"),  # 1.4 against 2.0
        ((0.95, 0.95, 0.95), 2.0, "winograd"),  # the faster of the two in all: 2.7 against 2.85
        ((1.2, 0.2, 1.2), 2.0, "winograd4"),  # slower for two products, faster in all: 2.6
    ],
)
def test_winograd_is_planned_for_a_layer_whose_products_take_less_time_in_all(
    monkeypatch, winograd4, layer_planned, expected
):
    geometry = fast_conv.Geometry((2, 8, 8, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))
    alone = {
        role: {
            **dict.fromkeys(fast_conv.FORMULATIONS[role], 3.0),
            "xla": 1.0,
            "taps": 0.5,
            "winograd": 0.9,
            "winograd4": seconds,
        }
        for role, seconds in zip(planning.ROLES, winograd4)
    }
    plan, timings = _measure_with_times(monkeypatch, geometry, alone, layer_planned)
    assert plan.forward == expected
    if expected in fast_conv.WINOGRAD:  # all three products or none
        assert plan == fast_conv.Plan(expected, expected, expected)
    else:
        assert fast_conv.WINOGRAD.keys().isdisjoint(vars(plan).values())
    assert _fastest(timings, "forward") == expected


def test_restrict_keeps_each_variants_formulations_only(monkeypatch):
    geometry = fast_conv.Geometry((2, 8, 8, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))
    plans = {(geometry, "float32"): fast_conv.Plan("onednn", "col2im", "swapped")}
    key = (geometry, "float32")
    assert planning.restrict(plans, "planned") == plans
    assert planning.restrict(plans, "xla")[key] == fast_conv.XLA_PLAN
    # 'onednn': oneDNN for each product it can compute here, whatever the plan chose;
    # 'onednn_in_program': only where jaxlib's call computes it.
    routes = {"forward": "jaxlib", "input_grad": None, "kernel_grad": "library"}
    monkeypatch.setattr(fast_conv, "onednn_routes", lambda g, dtype, partitioned=False: routes)
    assert planning.restrict(plans, "onednn")[key] == fast_conv.Plan("onednn", "xla", "onednn")
    assert planning.restrict(plans, "onednn_direct") == planning.restrict(plans, "onednn")
    in_program = planning.restrict(plans, "onednn_in_program")[key]
    assert in_program == fast_conv.Plan("onednn", "xla", "xla")
    # Products planned as Winograd's stay so in 'onednn' and 'onednn_in_program' (fewer
    # multiplications, not a slower kernel for the same ones); 'onednn_direct' drops them.
    winograd = {key: fast_conv.Plan("winograd4", "col2im", "winograd")}
    assert planning.restrict(winograd, "onednn")[key] == fast_conv.Plan(
        "winograd4", "xla", "winograd"
    )
    assert planning.restrict(winograd, "onednn_in_program")[key] == fast_conv.Plan(
        "winograd4", "xla", "winograd"
    )
    assert planning.restrict(winograd, "onednn_direct")[key] == fast_conv.Plan(
        "onednn", "xla", "onednn"
    )
    assert planning.restrict(winograd, "xla")[key] == fast_conv.XLA_PLAN
    # oneDNN's own Winograd and its backward-data primitive are host calls: 'onednn' keeps
    # both, 'onednn_direct' the backward-data primitive only, 'onednn_in_program' neither.
    library = {key: fast_conv.Plan("onednn_winograd", "onednn_library", "onednn_winograd")}
    routes["input_grad"] = "jaxlib"
    assert planning.restrict(library, "onednn")[key] == library[key]
    assert planning.restrict(library, "onednn_direct")[key] == fast_conv.Plan(
        "onednn", "onednn_library", "onednn"
    )
    assert planning.restrict(library, "onednn_in_program")[key] == fast_conv.Plan(
        "onednn", "onednn", "xla"
    )
    # 'onednn_library': as 'onednn', with the backward-data primitive wherever 'onednn' has
    # jaxlib's call for the input gradient and the primitive is offered.
    offered = {"forward": ("xla",), "input_grad": ("xla", "onednn", "onednn_library")}
    monkeypatch.setattr(
        fast_conv, "candidates", lambda g, dtype="float32", partitioned=False: offered
    )
    assert planning.restrict(plans, "onednn_library")[key] == fast_conv.Plan(
        "onednn", "onednn_library", "onednn"
    )
    assert planning.restrict(library, "onednn_library")[key] == library[key]
    offered["input_grad"] = ("xla", "onednn")
    assert planning.restrict(plans, "onednn_library") == planning.restrict(plans, "onednn")
    with pytest.raises(ValueError, match="unknown planning variant 'fastest'.*planned"):
        planning.restrict(plans, "fastest")


def test_the_network_level_check_times_each_distinct_variant():
    keys = planning.find_convolutions(two_convolutions, IMAGES)
    forced = {key: fast_conv.Plan("taps", "col2im", "taps") for key in keys}
    variant, seconds = planning.measure_network(two_convolutions, (IMAGES,), {}, forced)
    # Each oneDNN variant is timed only where it computes something the others do not.
    routes = {route for key in keys for route in fast_conv.onednn_routes(*key).values()}
    expected = {"planned", "xla"}
    if routes & {"jaxlib", "library"}:
        expected.add("onednn")
    if "jaxlib" in routes and "library" in routes:
        expected.add("onednn_in_program")
    onednn = planning.restrict(forced, "onednn")
    if planning.restrict(forced, "onednn_library") != onednn:
        expected.add("onednn_library")  # the library's input gradient, not jaxlib's call
    assert set(seconds) == expected
    assert all(value > 0 for value in seconds.values())
    assert variant in expected
    unplanned = {key: fast_conv.XLA_PLAN for key in keys}
    no_onednn = {role: ("xla",) for role in fast_conv.FORMULATIONS}
    with pytest.MonkeyPatch.context() as patch:  # nothing but XLA's to compare
        patch.setattr(fast_conv, "candidates", lambda g, dtype, partitioned=False: no_onednn)
        outcome = planning.measure_network(two_convolutions, (IMAGES,), {}, unplanned)
    assert outcome == ("xla", {})


def test_the_network_level_check_times_oneDNN_with_and_without_winograd():
    def one_convolution(convolution, x):
        conv = layers.Conv(4, (3, 3), conv_general_dilated=convolution)
        return conv.init_with_output(jax.random.PRNGKey(0), x)[0]

    (key,) = planning.find_convolutions(one_convolution, IMAGES)
    forced = {key: fast_conv.Plan("winograd4", "col2im", "winograd4")}
    _, seconds = planning.measure_network(one_convolution, (IMAGES,), {}, forced)
    routes = fast_conv.onednn_routes(*key)
    # 'onednn' keeps Winograd's products and computes col2im's input gradient by oneDNN's or
    # XLA's: unlike 'planned' and 'xla' everywhere.
    expected = {"planned", "xla", "onednn"}
    if set(routes.values()) & {"jaxlib", "library"}:
        expected.add("onednn_direct")  # oneDNN's alone: unlike 'xla' wherever it computes
    if routes["input_grad"] == "library":
        expected.add("onednn_in_program")  # XLA's input gradient, not the library's
    if planning.restrict(forced, "onednn_library") != planning.restrict(forced, "onednn"):
        expected.add("onednn_library")  # the library's input gradient, not jaxlib's call
    assert set(seconds) == expected


def test_the_network_level_outcome_is_used_recorded_and_not_measured_again(
    tmp_path, cache, monkeypatch
):
    calls = []

    def xla_was_fastest(fn, args, kwargs, plans, training_step, partitioned):
        calls.append(plans)
        return "xla", {"planned": 2.0, "xla": 1.0}

    monkeypatch.setattr(planning, "measure_network", xla_was_fastest)
    monkeypatch.setattr(planning, "measure", lambda *key: (fast_conv.Plan("taps"), {}))
    messages = []
    plans = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json", log=messages.append)
    assert len(calls) == 1 and set(calls[0].values()) == {fast_conv.Plan("taps")}
    assert set(plans.values()) == {fast_conv.XLA_PLAN}
    assert "planned 2 s, xla 1 s; using 'xla' (checked in" in messages[1]
    # The run's file holds the plans as used; the machine's the measured ones and the outcome.
    assert set(planning.read_file(tmp_path / "run.json").values()) == {fast_conv.XLA_PLAN}
    assert set(planning.read_file(cache).values()) == {fast_conv.Plan("taps")}
    assert list(planning.read_networks(cache).values()) == ["xla"]
    # A new run of the same network on this machine, and the resumed run, measure nothing.
    again = planning.plan(two_convolutions, IMAGES, path=tmp_path / "new.json")
    resumed = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json")
    assert again == resumed == plans and len(calls) == 1


def test_networks_with_the_same_convolutions_but_other_layers_are_checked_apart(
    tmp_path, cache, monkeypatch
):
    # What XLA fuses around a convolution decides the network-level check as much as the
    # convolutions do, so one network's outcome is not another's.
    outcomes = iter(["xla", "planned"])
    calls = []

    def check(fn, args, kwargs, plans, training_step, partitioned):
        calls.append(fn)
        return next(outcomes), {}

    monkeypatch.setattr(planning, "measure_network", check)
    monkeypatch.setattr(planning, "measure", lambda *key: (fast_conv.Plan("taps"), {}))
    pooled = lambda convolution, x: layers.pool(two_convolutions(convolution, x), "max", 2)
    first = planning.plan(two_convolutions, IMAGES)
    second = planning.plan(pooled, IMAGES)
    assert len(calls) == 2
    assert set(first.values()) == {fast_conv.XLA_PLAN}
    assert set(second.values()) == {fast_conv.Plan("taps")}
    assert sorted(planning.read_networks(cache).values()) == ["planned", "xla"]
    # Each is read back for its own network, not measured again.
    assert planning.plan(pooled, IMAGES) == second
    assert planning.plan(two_convolutions, IMAGES) == first and len(calls) == 2
    fingerprint = lambda fn: planning.program_fingerprint(fn, (IMAGES,), {})  # noqa: E731
    assert fingerprint(pooled) == fingerprint(pooled) != fingerprint(two_convolutions)


def test_a_partitioned_program_is_planned_without_onednns_calls(tmp_path, cache, monkeypatch):
    # XLA's partitioner would run such a call on one device with every device's batch there.
    from jaxconv.cpu import dnnl, onednn

    monkeypatch.setattr(onednn, "available", lambda: True)
    monkeypatch.setattr(dnnl, "available", lambda: True)
    keys = planning.find_convolutions(two_convolutions, IMAGES)
    assert any("onednn" in names for names in fast_conv.candidates(*keys[0]).values())
    offered = fast_conv.candidates(*keys[0], partitioned=True)
    assert all("onednn" not in names for names in offered.values())
    partitioned_file = planning.cache_path(partitioned=True)
    assert partitioned_file != planning.cache_path()  # choices among fewer formulations
    plans = planning.plan(two_convolutions, IMAGES, path=tmp_path / "run.json", partitioned=True)
    assert all("onednn" not in vars(plan).values() for plan in plans.values())
    assert partitioned_file.exists() and not planning.cache_path().exists()


def test_formulations_are_timed_in_turns_and_a_slow_one_only_warmed_up():
    # Each call records its name, so the order the functions ran in can be read back.
    calls = []

    def recorded(name, work):
        def fn(x):
            # On an element of x, so that it runs with the compiled function, not when traced.
            io_callback(lambda element: calls.append(name), None, x[0, 0])
            return work(x)

        return fn

    def slow(x):  # tens of matrix products against one
        return jax.lax.fori_loop(0, 40, lambda _, y: jnp.tanh(y @ x), x)

    functions = {
        "a": (recorded("a", lambda x: x @ x), [(128, 128)]),
        "b": (recorded("b", lambda x: x @ x), [(128, 128)]),
        "slow": (recorded("slow", slow), [(128, 128)]),
    }
    times = planning._side_by_side(functions, "float32")
    assert calls[:3] == ["a", "b", "slow"]  # compiled, then called once each
    # Warm-up calls in turns until each has taken MEASURE_SECONDS: the slow one's few are
    # among the fast ones' first, and it is called no more after them.
    last_slow = max(index for index, name in enumerate(calls) if name == "slow")
    slow_warm_ups = calls.count("slow") - 1
    assert slow_warm_ups >= 1
    assert calls[3 : 3 + 3 * slow_warm_ups] == ["a", "b", "slow"] * slow_warm_ups
    assert last_slow == 3 * slow_warm_ups + 2
    assert calls.count("a") > calls.count("slow")
    # Then rounds of the two left, the order rotating from round to round.
    rounds = planning.MAX_REPEATS
    assert calls[-2 * rounds :] == [
        name for index in range(rounds) for name in (["a", "b"] if index % 2 == 0 else ["b", "a"])
    ]
    assert times["slow"] > 2 * min(times["a"], times["b"])


def test_the_fastest_variant_is_judged_round_by_round():
    # 'a' is 10% faster than 'b' in every round but the third, where a slow spell met 'a'
    # alone; two other rounds ran slow for both. By their median seconds 'b' would win.
    rounds = [
        {"a": 1.0, "b": 1.1},
        {"a": 2.0, "b": 2.2},
        {"a": 2.0, "b": 1.1},
        {"a": 1.0, "b": 1.1},
        {"a": 2.0, "b": 2.2},
    ]
    fastest, relative = planning.fastest_in_rounds(rounds)
    assert fastest == "a"
    assert relative == pytest.approx({"a": 1.0, "b": 1.1})


def test_calls_in_turns_stop_when_each_has_taken_its_time(clock):
    def sleeping(seconds):
        return lambda: clock.sleep(seconds)

    calls = {"a": sleeping(0.001), "b": sleeping(0.0015), "slow": sleeping(0.05)}
    warm, rounds = planning._in_turns(calls, 0.02, 3, 100)
    assert set(warm) == {"a", "b", "slow"}
    assert all(set(times) == {"a", "b"} for times in rounds)  # 'slow' only warmed up
    # Rounds stop as soon as both have taken 0.02 s.
    spent = lambda rounds, name: sum(times[name] for times in rounds)  # noqa: E731
    assert min(spent(rounds, "a"), spent(rounds, "b")) >= 0.02
    assert min(spent(rounds[:-1], "a"), spent(rounds[:-1], "b")) < 0.02
    # At least and at most the rounds asked for, whatever the time.
    assert len(planning._in_turns(calls, 0.0, 3, 100)[1]) == 3
    assert len(planning._in_turns(calls, 100.0, 1, 4)[1]) == 4
    # A looser bound keeps the slow call in the rounds.
    assert set(planning._in_turns(calls, 0.0, 1, 1, drop_above=100)[1][0]) == set(calls)


def test_a_call_slow_once_while_warming_up_is_still_timed_with_the_others(clock):
    # 'hiccup' is as fast as 'a' but its second call (the first warm-up call) takes 50x as
    # long, as a shared machine's call now and then does.
    counts = {"a": 0, "hiccup": 0, "slow": 0}

    def counted(name, seconds):
        def call():
            counts[name] += 1
            clock.sleep(0.05 if name == "hiccup" and counts[name] == 2 else seconds)

        return call

    def calls():
        for name in counts:
            counts[name] = 0
        return {
            "a": counted("a", 0.001),
            "hiccup": counted("hiccup", 0.001),
            "slow": counted("slow", 0.03),
        }

    # Judged on one warm-up call, it is dropped with the truly slow one.
    _, rounds = planning._in_turns(calls(), 0.0, 1, 1, drop_above=1.5)
    assert set(rounds[0]) == {"a"}
    # Judged on the best of warm-up calls lasting 0.06 s each, it is kept; the slow one,
    # whose one warm-up call took half that, is called twice and still dropped.
    warm, rounds = planning._in_turns(calls(), 0.0, 1, 1, drop_above=1.5, warm_seconds=0.06)
    assert set(rounds[0]) == {"a", "hiccup"}
    assert counts["slow"] == 3  # the first call, two warm-up calls, no round
    assert counts["a"] > 30 and warm["hiccup"] < 0.01


def test_the_network_level_check_times_the_training_step_when_given(cache, clock, monkeypatch):
    taps = fast_conv.Plan("taps", "col2im", "taps")
    monkeypatch.setattr(planning, "measure", lambda geometry, dtype, partitioned: (taps, {}))
    keys = planning.find_convolutions(two_convolutions, IMAGES)
    xla = planning.restrict({key: taps for key in keys}, "xla")
    built = []

    def training_step(plans):  # XLA's everywhere is the fastest step here
        built.append(plans)
        return lambda: clock.sleep(0.001 if plans == xla else 0.0015)

    messages = []
    plans = planning.plan(
        two_convolutions, IMAGES, log=messages.append, training_step=training_step
    )
    assert plans == xla
    assert xla in built and len(built) >= 2  # one step built for each variant timed
    assert all(built.count(variant) == 1 for variant in built)
    assert "the network's training step" in messages[-1]
    assert "xla 1 ms" in messages[-1]  # the simulated step's median, in milliseconds
    # An outcome of the step's check is not taken for the gradient's, nor the other way.
    (checked,) = planning._cached_networks().items()
    monkeypatch.setattr(planning, "time", time)  # the gradient's calls take real time
    planning.plan(two_convolutions, IMAGES)
    assert len(planning._cached_networks()) == 2 and checked[1] == "xla"
