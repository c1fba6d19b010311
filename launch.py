"""The one entry point: `python launch.py --config experiments/<name>.py[:variant] --workdir DIR`.

Overrides follow the ml-collections style, `--config.<key>=<value>` (e.g.
`--config.num_train_steps=100 --config.optimizer.weight_decay=0`). `--summary` prints the
model's per-layer table instead of training. Starting the same command again on the same
workdir resumes from the newest checkpoint there. A finished run leaves its report in
DIR/report/index.html (`--config.report=False` skips it).

    python launch.py report --workdir DIR          # (re)draws a run's report
    python launch.py compare DIR DIR ... [--out OUT]  # one plot and table over several runs
    python launch.py export --workdir DIR --out OUT [--format stablehlo]  # to commit or ship
    python launch.py predict --workdir DIR --out OUT PATH ...  # the model on your own images
"""

import argparse
import functools
import os
import sys

from jaxconv.configs import checks, loading
from jaxconv.cpu import platform
from jaxconv.errors import ConfigError, JaxconvError

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
            raise ConfigError(
                f"unrecognised argument '{item}'; overrides are written --config.<key>=<value>."
            )
        key, _, value = item[len("--config.") :].partition("=")
        loading.override(config, key, value)
    checks.check(config)
    if not options.summary and not options.workdir:
        raise ConfigError("--workdir is required to train (e.g. --workdir runs/demo).")
    return options, config


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py report", description="Draws the report of a run's workdir."
    )
    parser.add_argument("--workdir", required=True, help="the run's --workdir")
    parser.add_argument(
        "--max_examples", type=int, default=1000, help="evaluation examples the model sees"
    )
    options = parser.parse_args(argv)
    return _write_report(options.workdir, options.max_examples)


def compare_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py compare", description="One plot and one table comparing runs."
    )
    parser.add_argument("workdirs", nargs="+", help="the runs' --workdir folders")
    parser.add_argument("--out", default="runs/compare", help="where the comparison goes")
    options = parser.parse_args(argv)
    missing = [path for path in options.workdirs if not os.path.isdir(path)]
    if missing:
        raise ConfigError(f"no such workdir: {', '.join(missing)}; pass runs' --workdir folders.")
    from jaxconv import report

    page = report.compare(options.workdirs, options.out)
    print(f"Comparison of {len(options.workdirs)} runs: {page}", flush=True)
    return 0


def export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py export",
        description="Writes a run's trained model to a folder: 'jaxconv' (config and "
        "variables, read as the workdir is) or 'stablehlo' (a program with its weights that "
        "jax and numpy alone run; see its load.py).",
    )
    parser.add_argument("--format", default="jaxconv", choices=("jaxconv", "stablehlo"))
    parser.add_argument(
        "--platforms", default="", help="stablehlo: e.g. cpu,cuda (default: this machine's)"
    )
    parser.add_argument("--workdir", required=True, help="the run's --workdir")
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--step", type=int, default=None, help="default: the newest checkpoint")
    parser.add_argument(
        "--dtype", default="float16", choices=("float16", "float32"), help="how floats are stored"
    )
    options = parser.parse_args(argv)
    if not os.path.isdir(options.workdir):
        raise ConfigError(f"workdir {options.workdir} does not exist; pass a run's --workdir.")
    from jaxconv.workdir import export

    if options.format == "stablehlo":
        platforms = tuple(filter(None, options.platforms.split(","))) or None
        path = export.export_stablehlo(options.workdir, options.out, options.step, platforms)
    else:
        path = export.export_run(options.workdir, options.out, options.step, options.dtype)
    print(f"Exported: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def predict_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py predict",
        description="Runs a trained model (a workdir or an exported folder) on image files, "
        "folders or glob patterns, and writes its predictions to --out.",
    )
    parser.add_argument("paths", nargs="+", help="image files, folders, or quoted globs")
    parser.add_argument("--workdir", required=True, help="the run's --workdir or an export")
    parser.add_argument("--out", required=True, help="where the predictions go")
    parser.add_argument("--tta", action="store_true", help="average with the mirror image")
    parser.add_argument(
        "--crops", action="store_true", help="classification: average five 7/8 crops too"
    )
    parser.add_argument("--top_k", type=int, default=5, help="classification: classes listed")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--reference", default=None, help="denoising: clean images (a file, or a folder)"
    )
    options = parser.parse_args(argv)
    if options.top_k < 1 or options.batch_size < 1:
        raise ConfigError("--top_k and --batch_size take 1 or more.")
    if not os.path.isdir(options.workdir):
        raise ConfigError(f"workdir {options.workdir} does not exist; pass a run's --workdir.")
    platform.configure_xla()
    from jaxconv import predict

    summary = predict.predict(
        options.workdir,
        options.paths,
        options.out,
        tta=options.tta,
        crops=options.crops,
        top_k=options.top_k,
        batch_size=options.batch_size,
        reference=options.reference,
    )
    print(f"Predicted {summary.predicted} images: {', '.join(map(str, summary.written[:4]))}")
    for path, why in summary.skipped:
        print(f"launch.py predict: skipped {path}: {why}", file=sys.stderr)
    return 0


def _write_report(workdir: str, max_examples: int = 1000) -> int:
    if not os.path.isdir(workdir):
        raise ConfigError(f"workdir {workdir} does not exist; pass a run's --workdir.")
    platform.configure_xla()
    from jaxconv import report

    print(f"Report: {report.build(workdir, max_examples=max_examples)}", flush=True)
    return 0


def one_line_errors(command: str):
    """Runs a command so that a problem the user can fix (a JaxconvError) ends it with one
    line naming the fix, and exit status 2 for a bad command line or config, 1 for the rest;
    any other exception keeps its traceback, which JAXCONV_TRACEBACK=1 shows for these too."""

    def decorate(function):
        @functools.wraps(function)
        def run(argv: list[str]) -> int:
            try:
                return function(argv)
            except JaxconvError as error:
                if os.environ.get("JAXCONV_TRACEBACK"):
                    raise
                print(f"{command}: error: {error}", file=sys.stderr)
                return 2 if isinstance(error, ConfigError) else 1

        return run

    return decorate


def main(argv: list[str]) -> int:
    commands = {
        "report": report_main,
        "compare": compare_main,
        "export": export_main,
        "predict": predict_main,
    }
    if argv and argv[0] in commands:
        return one_line_errors(f"launch.py {argv[0]}")(commands[argv[0]])(argv[1:])
    return one_line_errors("launch.py")(train_main)(argv)


def train_main(argv: list[str]) -> int:
    options, config = parse_args(argv)
    note = platform.configure_xla()  # before JAX starts its backend
    import jax

    from jaxconv.train import loop, parallel

    started = parallel.initialize_distributed(config)
    # XLA:CPU allocates each step's buffers anew: keep freed memory rather than fault it in.
    kept = platform.keep_freed_memory() if jax.default_backend() == "cpu" else None
    leader = jax.process_index() == 0  # only process 0 speaks for a multi-host job
    if leader:
        print(config, flush=True)
        for line in (note, kept, started and f"Distributed run: {started}."):
            if line:
                print(line, flush=True)

    try:
        if options.summary:
            return _print_summary(config)
        summary = _job(config.job)(config, options.workdir)
    except loop.Interrupted as interrupted:
        print(f"launch.py: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signal_number
    if leader:
        scalars = {k: v for k, v in summary.items() if not isinstance(v, list | dict)}
        print("Summary: " + ", ".join(f"{k} {v}" for k, v in scalars.items()), flush=True)
        if config.report and config.job == "train":
            if jax.process_count() > 1:  # drawing it restores the model on this host alone
                print(
                    f"Report: run `python launch.py report --workdir {options.workdir}` "
                    "on one host to draw it.",
                    flush=True,
                )
            else:
                _report_after_training(options.workdir)
    return 0


def _report_after_training(workdir: str) -> None:
    """The trained run is saved whatever happens here: a report that fails says why and
    leaves `launch.py report` to draw it later."""
    try:
        _write_report(workdir)
    except Exception as error:  # noqa: BLE001 - a figure must never cost the run
        print(
            f"launch.py: the report was not written ({type(error).__name__}: {error}); "
            f"run `python launch.py report --workdir {workdir}` to retry.",
            file=sys.stderr,
        )


def _job(name: str):
    """The function that runs a config's `job`: training, or a job with no training."""
    from jaxconv import detection
    from jaxconv.train import loop

    jobs = {"train": loop.run, "count_coins": detection.run}
    if name not in jobs:
        raise ConfigError(f"unknown job '{name}'; use one of {', '.join(jobs)}.")
    return jobs[name]


def _print_summary(config) -> int:
    from jaxconv import data, models, tasks
    from jaxconv.models.from_config import build_model

    source = data.get_source(
        config.data.name, config.data.train_split, config.data.data_dir, config.data
    )
    model = build_model(config, tasks.get(config.task, config).output_size(source))
    print(models.summary(model, (1, *source.image_shape)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
