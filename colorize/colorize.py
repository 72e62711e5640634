"""`python -m colorize.colorize checkpoint=... input=... output=...`: colourise your own photos.

The output keeps every pixel of the photo's own luminance; only the colour comes from the net, run
at the scale it was trained at (or at the photo's own, `resolution=native`) and upsampled."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import numpy as np
from omegaconf import DictConfig

from colorize import atomic, cli, summary
from colorize.config import Resolution, check, require
from colorize.errors import ColorizeError
from colorize.folders import list_images, read_rgb

if TYPE_CHECKING:
    from colorize.wrapper import Colorizer

log = logging.getLogger(__name__)
cli.register()


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
            raise ColorizeError(
                f"inputs {other} and {file} would both be written to {target}: rename one or colourise them apart"
            )
        targets[file] = target
    return targets


def write_png(rgb: np.ndarray, target: Path) -> None:
    """Encoded in memory, then written whole or not at all."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ColorizeError(f"PNG encoding of {target.name} failed")
    atomic.write(target, lambda tmp: tmp.write_bytes(encoded.tobytes()))


def colour_files(cfg: DictConfig) -> int:
    """Writes a PNG per readable input; returns how many were written."""
    require(
        cfg,
        checkpoint="<path of last.pt/best.pt>, runs:/<run_id>/model or models:/<name>@<alias>",
        input="<image file or folder>",
        output="<folder for the PNGs>",
    )
    check(cfg)
    from tqdm import tqdm

    from colorize import checkpoint, photo
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
        rgb = read_rgb(file)  # colour or gray files both come back as 3-channel RGB
        if rgb is None:
            failed.append(f"{file} (cannot be read)")
            continue
        colour = photo.colourise(
            rgb, model.colour_photo, size, model.fixed_size is not None, cfg.resolution.value, device
        )
        try:
            write_png(colour, targets[file])
        except ColorizeError as error:
            failed.append(str(error))
    for line in failed:
        log.warning("not written: %s", line)
    print(summary.of_photos(len(files) - len(failed), len(files), Path(cfg.output), cfg.checkpoint), flush=True)
    if failed:
        raise ColorizeError(f"{len(failed)} of {len(files)} inputs were not written (first: {failed[0]})")
    return len(files)


def input_files(source: Path) -> list[Path]:
    """The photos of `input=`: the file, or every image under the folder."""

    if not source.exists():
        raise ColorizeError(f"input={source} does not exist")
    return [Path(f) for f in list_images(source, key="input")] if source.is_dir() else [source]


def check_resolution(model: "Colorizer", size: int, resolution: Resolution) -> None:
    if resolution == Resolution.native and model.fixed_size is not None:
        raise ColorizeError(
            f"resolution=native needs a fully convolutional model; this one works at {size}x{size} only (use resolution=trained)"
        )


@hydra.main(version_base="1.3", config_path="../conf", config_name="colorize")
def main(cfg: DictConfig) -> None:
    cli.run(colour_files, cfg)


if __name__ == "__main__":
    main()
