"""Count the CIE ab colours of a folder of photos into the fixed table the rebalanced AuC weighs by.

    python benchmarks/ab_prior.py /path/to/photos/train/small      # writes colorize/ab_prior.py

The table the project ships was counted over the 50,500 Tiny ImageNet photos of
../shared/data/photos's train/small (64x64, every pixel), with this script. It is fixed on purpose
(colorize.metrics): a rarity weight re-counted on each evaluation split would change the yardstick
with the data, so two models, two data sets or a model and its baselines would not compare.
"""

import argparse
import os
from pathlib import Path

import torch

from colorize.color import as_float, rgb_to_lab
from colorize.folders import load_folder

ROOT = Path(__file__).resolve().parents[1]
AB_EDGE, AB_STEP = 110.0, 10.0  # ab units: the grid of colorize.metrics (Zhang et al. 2016's, 22 x 22 bins)
BINS = round(2 * AB_EDGE / AB_STEP)
CHUNK = 2000  # images per Lab conversion: about 100 MB of float intermediates at 64 px


def count(rgb: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (BINS, BINS) pixel counts of (a, b); colours past the edge go to the edge bins."""
    counts = torch.zeros(BINS * BINS, dtype=torch.int64)
    for start in range(0, len(rgb), CHUNK):
        ab = rgb_to_lab(as_float(rgb[start : start + CHUNK].permute(0, 3, 1, 2)))[:, 1:]
        index = ((ab + AB_EDGE) / AB_STEP).floor().clamp(0, BINS - 1).long()
        counts += torch.bincount((index[:, 0] * BINS + index[:, 1]).flatten(), minlength=BINS * BINS)
    return counts.view(BINS, BINS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="a folder of photos (searched recursively)")
    parser.add_argument(
        "--image-size", type=int, default=64, help="pixels: photos are resized and centre-cropped to this first"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "colorize-cache")
    parser.add_argument("--out", type=Path, default=ROOT / "colorize" / "ab_prior.py")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rgb = torch.from_numpy(load_folder(args.photos, args.image_size, False, args.cache_dir, key="photos"))
    counts = count(rgb)
    rows = ",\n".join("    (" + ", ".join(str(c) for c in row) + ")" for row in counts.tolist())
    args.out.write_text(
        f'"""Pixel counts of CIE ab (sRGB, D65) over {len(rgb):,} photos at {args.image_size} px: {args.photos.parent.name}/{args.photos.name}\n'
        f"of ../shared/data/photos (Tiny ImageNet's train part), {counts.sum():,} pixels.\n\n"
        f"Written by `python benchmarks/ab_prior.py <photos>/train/small`; do not edit. COUNTS[i][j] is the bin\n"
        f"a in [{-AB_EDGE:g} + {AB_STEP:g} i, {-AB_EDGE:g} + {AB_STEP:g} (i + 1)), b likewise with j; colours past +-{AB_EDGE:g} count in the edge bins.\n"
        f'colorize.metrics turns them into the rarity weights of the rebalanced AuC."""\n\n'
        f"AB_EDGE, AB_STEP = {AB_EDGE}, {AB_STEP}  # ab units\n"
        f"COUNTS = (\n{rows},\n)\n"
    )
    seen = int((counts > 0).sum())
    print(f"wrote {args.out}: {counts.sum():,} pixels of {len(rgb):,} photos, {seen} of {BINS * BINS} bins seen")


if __name__ == "__main__":
    main()
