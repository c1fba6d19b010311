"""The one entry point: `python launch.py --config experiments/<name>.py[:variant] --workdir DIR`.

Overrides follow the ml-collections style, `--config.<key>=<value>` (e.g.
`--config.num_train_steps=100 --config.optimizer.weight_decay=0`). `--summary` prints the
model's per-layer table instead of training. Starting the same command again on the same
workdir resumes from the newest checkpoint there.
"""

import argparse
import os
import sys

from jaxconv import platform
from jaxconv.configs import loading

USAGE = (
    "python launch.py --config experiments/<name>.py[:variant] --workdir runs/<name> "
    "[--config.<key>=<value> ...] [--summary]"
)


def parse_args(argv: list[str]):
    """Splits argv into launch options and config overrides; returns (options, config)."""
    parser = argparse.ArgumentParser(
        prog="launch.py",
        usage=USAGE,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="experiment file, optionally :variant")
    parser.add_argument("--workdir", help="where metrics, checkpoints and summary.json go")
    parser.add_argument("--summary", action="store_true", help="print the model table and exit")
    options, rest = parser.parse_known_args(argv)
    config = loading.load(options.config)
    for item in rest:
        if not item.startswith("--config.") or "=" not in item:
            raise loading.ConfigError(
                f"unrecognised argument '{item}'; overrides are written --config.<key>=<value>."
            )
        key, _, value = item[len("--config.") :].partition("=")
        loading.override(config, key, value)
    if not options.summary and not options.workdir:
        raise loading.ConfigError("--workdir is required to train (e.g. --workdir runs/demo).")
    return options, config


def main(argv: list[str]) -> int:
    try:
        options, config = parse_args(argv)
    except loading.ConfigError as error:
        print(f"launch.py: error: {error}", file=sys.stderr)
        return 2
    note = platform.configure_xla()  # before JAX starts its backend
    import jax

    from jaxconv.train import checkpoint, loop, parallel

    try:
        started = parallel.initialize_distributed(config)
    except ValueError as error:
        print(f"launch.py: error: {error}", file=sys.stderr)
        return 2
    leader = jax.process_index() == 0  # only process 0 speaks for a multi-host job
    if leader:
        print(config, flush=True)
        for line in (note, started and f"Distributed run: {started}."):
            if line:
                print(line, flush=True)

    # Errors that are the user's to fix get one clear line; JAXCONV_TRACEBACK=1 shows the rest.
    expected = (
        ValueError,
        KeyError,
        FileNotFoundError,
        PermissionError,
        FloatingPointError,
        checkpoint.CheckpointError,
        checkpoint.WorkdirInUseError,
    )
    try:
        if options.summary:
            return _print_summary(config, loop)
        summary = _job(config.job)(config, options.workdir)
    except loop.Interrupted as interrupted:
        print(f"launch.py: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signal_number
    except expected as error:
        if os.environ.get("JAXCONV_TRACEBACK"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"launch.py: error: {message}", file=sys.stderr)
        return 1
    if leader:
        scalars = {k: v for k, v in summary.items() if not isinstance(v, list | dict)}
        print("Summary: " + ", ".join(f"{k} {v}" for k, v in scalars.items()), flush=True)
    return 0


def _job(name: str):
    """The function that runs a config's `job`: training, or a job with no training."""
    from jaxconv import detection
    from jaxconv.train import loop

    jobs = {"train": loop.run, "count_coins": detection.run}
    if name not in jobs:
        raise ValueError(f"unknown job '{name}'; use one of {', '.join(jobs)}.")
    return jobs[name]


def _print_summary(config, loop) -> int:
    from jaxconv import data, models

    source = data.get_source(
        config.data.name, config.data.train_split, config.data.data_dir, config.data
    )
    model = loop.build_model(config, source.num_classes)
    print(models.summary(model, (1, *source.image_shape)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
