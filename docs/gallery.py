"""The README's gallery: gray input, each model's colouring, and the original, for a few photos.

    python docs/gallery.py --photos ../shared-unpacked/photos/test/large \
        --model best_cpu=outputs/quality/best_cpu/checkpoints/best.pt \
        --model best_photo=outputs/best_photo/checkpoints/best.pt --saturation best_photo=1.25

Each photo's gray is coloured exactly as `python -m colorize.colorize` colours it (default
resolution), at the photo's own size; the tiles are then shrunk for the page. The photos are the
first `--count` of the folder in name order: no choosing of flattering ones.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from colorize import checkpoint, photo
from colorize.color import gray
from colorize.folders import list_images, read_rgb

PROJECT = Path(__file__).resolve().parents[1]
TILE_HEIGHT = 160  # pixels: 4 tiles of a 3:2 photo make a row about 1,000 pixels wide
LABEL_HEIGHT = 22


def label(text: str, width: int) -> np.ndarray:
    strip = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def shrink(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (round(w * TILE_HEIGHT / h), TILE_HEIGHT), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="a folder of photos the models never saw")
    parser.add_argument(
        "--model", action="append", required=True, help="name=checkpoint (a path, runs:/ or models:/ URI)"
    )
    parser.add_argument(
        "--saturation", action="append", default=[], help="name=value: that model's read-out saturation"
    )
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--tracking-uri", default=f"sqlite:///{PROJECT}/mlruns/mlflow.db")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "gallery.jpg")
    args = parser.parse_args()

    saturation = {name: float(value) for name, value in (spec.split("=", 1) for spec in args.saturation)}
    models = []
    for spec in args.model:
        name, source = spec.split("=", 1)
        model, trained = checkpoint.load_model(source, args.tracking_uri, saturation=saturation.get(name))
        models.append((name, model, trained["data"]["image_size"]))
    rows = []
    for file in sorted(list_images(args.photos, key="--photos"))[: args.count]:
        rgb = read_rgb(file)
        shade = gray(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0, 0].numpy()  # what a user would colourise
        tiles = [("gray input", np.repeat(shade[..., None], 3, axis=2))]
        for name, model, size in models:
            tiles.append(
                (
                    name,
                    photo.colourise(
                        shade, model.colour_photo, size, model.fixed_size is not None, "trained", torch.device("cpu")
                    ),
                )
            )
        tiles.append(("original", rgb))
        shrunk = [shrink(tile) for _, tile in tiles]
        labelled = [np.vstack([label(name, tile.shape[1]), tile]) for (name, _), tile in zip(tiles, shrunk)]
        gap = np.full((labelled[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.hstack([part for tile in labelled for part in (tile, gap)][:-1]))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 6), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB): {len(rows)} photos from {args.photos}")


if __name__ == "__main__":
    main()
