"""Train and evaluate each model preset on CIFAR-10 and print (or write into the docs' quality page) the quality table.

    python benchmarks/quality.py --train /path/to/cifar10-jpeg/train [--write]

Each preset is trained by `python -m colorize.train experiment=<preset> data=folder data.root=<train>`
(its held-out val split is what presets were tuned on), then scored by `python -m colorize.evaluate`
on the `test/` folder beside `train/`. Training minutes are the wall time of the whole train command.
Presets run one after another, never in parallel, so their times compare. `--presets a b` reruns only
those; the table keeps the other rows from their last measurement (outputs/quality/<preset>/quality.json).
`--override key=value` adds a train override to every preset (the slow test's smoke run uses it).
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "quality.md"
START, END = "<!-- quality-table:start -->", "<!-- quality-table:end -->"
PRESETS = {  # row label -> train overrides
    "seed convnet": ["experiment=seed", "trainer.epochs=3"],  # the seed trains for 1000 epochs: 3 shown
    "convae": ["experiment=convae"],
    "unet": ["experiment=unet"],
    "best_cpu": ["experiment=best_cpu"],
}


def run(module: str, *overrides: str) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", f"colorize.{module}", *overrides]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.exit(f"{module} failed:\n{result.stdout[-4000:]}")
    return time.perf_counter() - started


def row(label: str, metrics: dict, minutes: str, parameters: str, gray_copy_psnr: float) -> str:
    gain = metrics["psnr"] - gray_copy_psnr
    return (
        f"| {label} | {metrics['psnr']:.2f} | {gain:+.2f} | {metrics['psnr_per_image']:.2f} | {metrics['ssim']:.3f} "
        f"| {metrics['colorfulness_ratio']:.2f} | {metrics['colorfulness_gap']:.1f} | {metrics['mean_ab_close']:.2f} "
        f"| {metrics['auc']:.1f} | {metrics['auc_rebalanced']:.1f} | {minutes} | {parameters} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="the CIFAR-10 JPEG train/ folder (test/ beside it)")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="paths.root_dir of the runs: mlruns/ and .cache/ go there"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "quality", help="runs, checkpoints, metrics")
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--write", action="store_true", help="replace the table in --page")
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument(
        "--override", action="append", default=[], help="extra train override, e.g. data.limit=300 (smoke runs)"
    )
    args = parser.parse_args()
    if not (args.train.parent / "test").is_dir():
        sys.exit(f"{args.train.parent / 'test'} not found: the test split must sit beside --train")

    data = ["data=folder", f"data.root={args.train.resolve()}", f"paths.root_dir={args.root}"]
    for label in args.presets:
        folder = args.out / label.replace(" ", "_")
        overrides = [*PRESETS[label], *args.override]
        seconds = run(
            "train",
            *overrides,
            *data,
            f"hydra.run.dir={folder}",
            "trainer.progress=false",
            "tracking.experiment=quality",
        )
        report_file = folder / "test_metrics.json"
        run(
            "evaluate",
            f"checkpoint={folder}/checkpoints/best.pt",
            *data,
            f"output={report_file}",
            f"hydra.run.dir={folder}/evaluate",
        )
        report = json.loads(report_file.read_text())
        (folder / "quality.json").write_text(
            json.dumps({"train_seconds": seconds, "overrides": overrides, **report}, indent=2)
        )
    # Rows of presets measured by an earlier call (--presets reruns only those named) are kept.
    results = {}
    for label in PRESETS:
        saved = args.out / label.replace(" ", "_") / "quality.json"
        if saved.exists():
            report = json.loads(saved.read_text())
            results[label] = (report["train_seconds"], report)

    first = next(iter(results.values()))[1]
    gray_copy_psnr = first["metrics"]["gray_copy"]["psnr"]
    lines = [
        "| model | psnr (dB) | vs gray copy (dB) | psnr_per_image (dB) | SSIM | colourfulness ratio | colourfulness gap | mean ab within 10 | AuC | AuC rebalanced | training minutes | parameters |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("gray copy (baseline)", first["metrics"]["gray_copy"], "-", "-", gray_copy_psnr),
        row("lab zero ab (baseline)", first["metrics"]["lab_zero_ab"], "-", "-", gray_copy_psnr),
    ]
    for label, (seconds, report) in results.items():
        lines.append(
            row(
                f"`{label}`",
                report["metrics"]["model"],
                f"{seconds / 60:.1f}",
                f"{report['model_parameters']:,}",
                gray_copy_psnr,
            )
        )
    command = " ".join(
        ["python benchmarks/quality.py --train", str(args.train), *(f"--override {o}" for o in args.override)]
    )
    table = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {first['data']} ({first['images']:,} images; CIFAR-10 (JPEG copy)), "
            f"training on the {args.train.name}/ folder beside it, {platform.processor() or platform.machine()} with "
            f"{os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f} at the end), by `{command}`:",
            "",
            *lines,
        ]
    )
    print(table)
    if args.write:
        text = args.page.read_text()
        block = f"{START}\n{table}\n{END}"
        args.page.write_text(re.sub(f"{re.escape(START)}.*?{re.escape(END)}", lambda _: block, text, flags=re.S))
        print(f"wrote the table into {args.page}")


if __name__ == "__main__":
    main()
