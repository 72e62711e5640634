"""`python -m colorize.colorize checkpoint=... input=... output=...`: colourise your own photos.

The output keeps every pixel of the photo's own luminance; only the colour comes from the net, run
at the scale it was trained at (or at the photo's own, `resolution=native`) and upsampled."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import numpy as np
from omegaconf import DictConfig

from colorize import atomic, cli
from colorize.config import Resolution, check, register, require
from colorize.errors import ColorizeError

if TYPE_CHECKING:
    import torch

    from colorize.wrapper import Colorizer

log = logging.getLogger(__name__)
register()


def output_paths(files: list[Path], source: Path, output: Path) -> dict[Path, Path]:
    """Each input's PNG under `output`, mirroring the input folder's layout; refused before anything
    is written when a PNG would replace an input or two inputs would share one PNG."""
    if output.exists() and not output.is_dir():
        raise ColorizeError(f"output={output} is a file: give a folder for the PNGs")
    inputs = {file.resolve() for file in files}
    targets: dict[Path, Path] = {}
    for file in files:
        relative = file.relative_to(source) if source.is_dir() else Path(file.name)
        target = (output / relative).with_suffix(".png")
        if target.resolve() in inputs:
            raise ColorizeError(f"output={output} would overwrite the input {file}: choose another output folder")
        if target in targets.values():
            other = next(f for f, t in targets.items() if t == target)
            raise ColorizeError(f"inputs {other} and {file} would both be written to {target}: rename one or colourise them apart")
        targets[file] = target
    return targets


def write_png(rgb: np.ndarray, target: Path) -> None:
    """Encoded in memory, then written whole or not at all."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ColorizeError(f"PNG encoding of {target.name} failed")
    atomic.write(target, lambda tmp: tmp.write_bytes(encoded.tobytes()))


def colorize(cfg: DictConfig) -> int:
    """Writes a PNG per readable input; returns how many were written."""
    require(
        cfg,
        checkpoint="<path of last.pt/best.pt>, runs:/<run_id>/model or models:/<name>@<alias>",
        input="<image file or folder>",
        output="<folder for the PNGs>",
    )
    check(cfg)
    from tqdm import tqdm

    from colorize import checkpoint, data
    from colorize.device import pick_device

    source = Path(cfg.input)
    files = input_files(source)
    targets = output_paths(files, source, Path(cfg.output))
    device = pick_device(cfg.device, key="device")
    model, trained = checkpoint.load_model(cfg.checkpoint, cfg.tracking.uri, cfg.temperature, cfg.saturation)
    model = model.to(device)
    size = trained["data"]["image_size"]  # the resolution the model was trained at
    check_resolution(model, size, cfg.resolution)
    failed: list[str] = []
    for file in tqdm(files, unit="image", disable=not cfg.progress):
        rgb = data.read_rgb(file)  # colour or gray files both come back as 3-channel RGB
        if rgb is None:
            failed.append(f"{file} (cannot be read)")
            continue
        colour = colourise(model, rgb, size, cfg.resolution, device)
        try:
            write_png((colour[0].permute(1, 2, 0) * 255).round().byte().cpu().numpy(), targets[file])
        except ColorizeError as error:
            failed.append(str(error))
    for line in failed:
        log.warning("not written: %s", line)
    log.info("wrote %d of %d images to %s", len(files) - len(failed), len(files), cfg.output)
    if failed:
        raise ColorizeError(f"{len(failed)} of {len(files)} inputs were not written (first: {failed[0]})")
    return len(files)


def input_files(source: Path) -> list[Path]:
    """The photos of `input=`: the file, or every image under the folder."""
    from colorize import data

    if not source.exists():
        raise ColorizeError(f"input={source} does not exist")
    return [Path(f) for f in data.list_images(source, key="input")] if source.is_dir() else [source]


def check_resolution(model: "Colorizer", size: int, resolution: Resolution) -> None:
    if resolution == Resolution.native and model.fixed_size is not None:
        raise ColorizeError(f"resolution=native needs a fully convolutional model; this one works at {size}x{size} only (use resolution=trained)")


def colourise(model: "Colorizer", rgb: np.ndarray, size: int, resolution: Resolution, device: "torch.device") -> "torch.Tensor":
    """(1, 3, H, W) RGB in [0, 1] of an (H, W, 3) uint8 photo: its own luminance at full size, the
    net's colour (from the photo at `size`, or at its own size with resolution=native) upsampled."""
    import torch

    from colorize import data

    view, (h, w) = (rgb, rgb.shape[:2]) if resolution == Resolution.native else net_view(rgb, size, model.fixed_size is not None)
    with torch.no_grad():
        prediction = model.predict(model.inputs(data.from_rgb(view[None], device)))[..., :h, :w]  # without the padding
        return model.to_rgb(model.inputs(data.from_rgb(rgb[None], device)), prediction, keep_luminance=True, made_from=(h, w))


def net_view(rgb: np.ndarray, size: int, fixed: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """The photo as the net saw its training images: shrunk (area averaging) until its shorter side
    is `size`, keeping the aspect ratio. A fixed-size net instead gets the whole photo fitted into
    size x size, the rest padded with edge pixels, so nothing is squashed or cut off. Returns the
    view and the height and width of the photo in it."""
    import cv2

    h, w = rgb.shape[:2]
    scale = size / (max(h, w) if fixed else min(h, w))
    shrunk = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    h, w = shrunk.shape[:2]
    if not fixed:
        return shrunk, (h, w)
    return cv2.copyMakeBorder(shrunk, 0, size - h, 0, size - w, cv2.BORDER_REPLICATE), (h, w)


@hydra.main(version_base="1.3", config_path="../conf", config_name="colorize")
def main(cfg: DictConfig) -> None:
    cli.run(colorize, cfg)


if __name__ == "__main__":
    main()
