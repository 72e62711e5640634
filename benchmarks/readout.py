"""A trained model's read-out on the held-out val split of its own training data: saturation (lab,
ycbcr) and temperature (bins models) change no weight, so one training shows the whole trade of
PSNR against colour, and a preset's read-out is chosen here, never on test images.

    python benchmarks/readout.py outputs/quality/best_cpu/checkpoints/best.pt --saturation 1 1.2 1.4 1.6
"""

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import OmegaConf

from colorize import checkpoint, data
from colorize.config import METRICS, DataConfig
from colorize.metrics import baselines, evaluate

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = tuple(name for name in METRICS if name != "colorfulness")  # the ratio and gap say it against the truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a best.pt / last.pt path")
    parser.add_argument("--saturation", type=float, nargs="*", default=[1.0])
    parser.add_argument("--temperature", type=float, nargs="*", default=[None], help="bins models only")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    args = parser.parse_args()

    model, trained = checkpoint.load_model(args.checkpoint, "")
    data_config = OmegaConf.merge(OmegaConf.structured(DataConfig), trained["data"])
    spec = replace(data.Source.from_config(data_config, str(args.cache_dir)), augment="none")
    val = data.load_split(spec, torch.device("cpu"), with_lab=model.lab).val
    reference = baselines(val)
    rows = {"gray copy": {c: reference[f"gray_copy_{c}"] for c in COLUMNS}}
    for temperature in args.temperature:
        for saturation in args.saturation:
            model = checkpoint.load_model(args.checkpoint, "", temperature, saturation)[0]
            name = f"saturation {saturation:g}" + ("" if temperature is None else f", temperature {temperature:g}")
            rows[name] = evaluate(model, val, lambda p, t: torch.zeros(()))
    print(
        f"{args.checkpoint} on the val split of {data_config.root or data_config.source.value} ({len(val):,} images):"
    )
    print(f"| read-out | {' | '.join(COLUMNS)} |\n| --- |{' ---: |' * len(COLUMNS)}")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
