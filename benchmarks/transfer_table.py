"""The transfer-learning table: test accuracy on the mnist_5k digits by labelled budget, for a
ResNet-20 trained from scratch, its Fashion-MNIST-pretrained backbone with a new head, and that
head followed by fine-tuning every layer.

    python launch.py --config experiments/resnet_fashion.py:depth=20,epochs=10 \\
        --workdir runs/resnet20_fashion          # the pretrained backbone, once
    python benchmarks/transfer_table.py [--pretrained runs/resnet20_fashion] [--json]

Each cell is one `launch.py` run of experiments/transfer_fashion_to_digits.py in
runs/transfer/<budget>_<mode>; finished runs are read back, not retrained.
"""

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUDGETS = (10, 100, 1000)
MODES = ("scratch", "head", "finetune")


def run_cell(budget: int, mode: str, pretrained: str, steps: int) -> dict:
    workdir = ROOT / "runs" / "transfer" / f"{budget}_{mode}"
    summary_path = workdir / ("finetune" if mode == "finetune" else "") / "summary.json"
    if not summary_path.exists():
        variant = f"budget={budget},mode={mode},pretrained={pretrained},steps={steps}"
        subprocess.run(
            [
                sys.executable,
                "launch.py",
                "--config",
                f"experiments/transfer_fashion_to_digits.py:{variant}",
                "--workdir",
                str(workdir),
            ],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    summary = json.loads(summary_path.read_text())
    seconds = summary["wall_time_s"]
    if mode == "finetune":
        seconds += json.loads((workdir / "head" / "summary.json").read_text())["wall_time_s"]
    return {"test_accuracy": summary["test_accuracy"], "wall_time_s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default="runs/resnet20_fashion")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (ROOT / args.pretrained / "checkpoints").is_dir():
        sys.exit(
            f"no pretrained run at {args.pretrained}; train it first with:\n  python "
            "launch.py --config experiments/resnet_fashion.py:depth=20,epochs=10 "
            f"--workdir {args.pretrained}"
        )
    table = {
        str(budget): {mode: run_cell(budget, mode, args.pretrained, args.steps) for mode in MODES}
        for budget in BUDGETS
    }
    if args.json:
        print(json.dumps(table))
        return
    print("| labelled digits per class | scratch | head only | head, then fine-tune |")
    print("|---|---|---|---|")
    for budget, row in table.items():
        cells = " | ".join(
            f"{row[mode]['test_accuracy']:.1%} ({row[mode]['wall_time_s']:.0f} s)" for mode in MODES
        )
        print(f"| {budget} | {cells} |")


if __name__ == "__main__":
    main()
