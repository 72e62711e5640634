"""A large folder of small photos for memory benchmarks, cut from a folder of bigger ones (never commit it).

python benchmarks/crops.py /path/to/photos/train/large /tmp/crops-300k --count 300000 --size 40
"""

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from colorize.folders import list_images, read_rgb

PER_FOLDER = 1000  # files per sub-folder: listing and writing stay fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--size", type=int, default=40, help="pixels, square")
    args = parser.parse_args()
    photos = [photo for photo in (read_rgb(path) for path in list_images(args.source)) if photo is not None]
    rng = np.random.default_rng(0)
    for i in range(args.count):
        photo = photos[i % len(photos)]
        top, left = rng.integers(0, photo.shape[0] - args.size), rng.integers(0, photo.shape[1] - args.size)
        folder = args.target / f"{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            os.makedirs(folder, exist_ok=True)
        crop = cv2.cvtColor(photo[top : top + args.size, left : left + args.size], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{i:07d}.jpg"), crop)
    print(f"wrote {args.count} crops of {args.size}x{args.size} to {args.target}")


if __name__ == "__main__":
    main()
