"""`python -m colorize.colorize checkpoint=... input=... output=...`: colourise your own photos."""

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from colorize import cli
from colorize.config import Resolution, register, require
from colorize.errors import ColorizeError

log = logging.getLogger(__name__)
register()


def output_path(file: Path, input_root: Path, output: Path) -> Path:
    relative = file.relative_to(input_root) if input_root.is_dir() else Path(file.name)
    return (output / relative).with_suffix(".png")


def colorize(cfg: DictConfig) -> int:
    """Writes a PNG per readable input; returns how many inputs could not be read."""
    require(
        cfg,
        checkpoint="<path of last.pt/best.pt> or checkpoint=runs:/<run_id>/model",
        input="<image file or folder>",
        output="<folder for the PNGs>",
    )
    import cv2
    import torch
    from tqdm import tqdm

    from colorize import colorizer, data
    from colorize.device import pick_device

    source = Path(cfg.input)
    if not source.exists():
        raise ColorizeError(f"input={source} does not exist")
    files = [Path(f) for f in data.list_images(source)] if source.is_dir() else [source]
    device = pick_device(cfg.device)
    model, trained = colorizer.load(cfg.checkpoint, cfg.tracking.uri)
    model = model.to(device)
    size = trained["data"]["image_size"]  # the resolution the model was trained at
    if cfg.resolution == Resolution.native and model.fixed_size is not None:
        raise ColorizeError(f"resolution=native needs a fully convolutional model; this one works at {size}x{size} only (use resolution=trained)")
    output = Path(cfg.output)
    failed: list[Path] = []
    for file in tqdm(files, unit="image", disable=not cfg.progress):
        rgb = data.read_rgb(file)  # colour or gray files both come back as 3-channel RGB
        if rgb is None:
            log.warning("cannot read %s: skipped", file)
            failed.append(file)
            continue
        full = data.from_rgb(rgb[None], device)
        if cfg.resolution == Resolution.native:
            small = full
        else:  # as in training: the RGB photo shrunk (area averaging), its gray or L taken after
            small = data.from_rgb(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)[None], device)
        with torch.no_grad():
            colour = model.to_rgb(model.inputs(full), model.predict(model.inputs(small)))
        pixels = (colour[0].permute(1, 2, 0) * 255).round().byte().cpu().numpy()
        target = output_path(file, source, output)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR))
    log.info("wrote %d of %d images to %s", len(files) - len(failed), len(files), output)
    if failed:
        raise ColorizeError(f"{len(failed)} of {len(files)} inputs could not be read and were skipped (first: {failed[0]})")
    return 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="colorize")
def main(cfg: DictConfig) -> None:
    cli.run(colorize, cfg)


if __name__ == "__main__":
    main()
