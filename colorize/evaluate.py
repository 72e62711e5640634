"""`python -m colorize.evaluate checkpoint=...`: a trained model against the baselines on test data."""

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from colorize import atomic, cli, summary
from colorize.config import METRICS, DataConfig, Resolution, check, require
from colorize.errors import ColorizeError
from colorize.folders import read_rgb

if TYPE_CHECKING:
    import torch

    from colorize.wrapper import Colorizer

log = logging.getLogger(__name__)
cli.register()

BASELINES = ("gray_copy", "lab_zero_ab")


def table(rows: dict[str, dict[str, float]]) -> str:
    header = f"{'':<12}" + "".join(f"{c:>19}" for c in METRICS)
    lines = [f"{name:<12}" + "".join(f"{row[c]:>19.4f}" for c in METRICS) for name, row in rows.items()]
    return "\n".join([header, *lines])


def score_photos(
    model: "Colorizer", files: list[Path], size: int, resolution: Resolution, device: "torch.device"
) -> tuple[dict, list[dict]]:
    """The model and the gray copy on each photo at its own size: the photo's gray, coloured as the
    photo command colours it, against the photo. Returns the summary rows and one row per photo."""
    import torch

    from colorize import photo
    from colorize.color import as_float, gray
    from colorize.metrics import Scores

    model_scores, gray_scores = Scores(), Scores()
    for file in files:
        rgb = read_rgb(file)
        if rgb is None:
            raise ColorizeError(f"input: {file} cannot be read as an image")
        truth = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device)
        shade = gray(truth)  # what a user would colourise: the photo's gray, (1, 1, H, W)
        colour = photo.colourise(
            shade[0, 0].cpu().numpy(), model.colour_photo, size, model.fixed_size is not None, resolution.value, device
        )
        model_scores.add(as_float(torch.from_numpy(colour).permute(2, 0, 1)[None].to(device)), as_float(truth))
        gray_scores.add(as_float(shade).expand(-1, 3, -1, -1), as_float(truth))
    ours, copy = model_scores.per_image(), gray_scores.per_image()
    photos = [
        {
            "file": str(file),
            **{k: v[i] for k, v in ours.items()},
            **{f"gray_copy_{k}": copy[k][i] for k in ("psnr", "ssim")},
        }
        for i, file in enumerate(files)
    ]
    scores = {"model": model_scores.result(), "gray_copy": gray_scores.result()}
    scores["model"]["ahead_of_gray_copy"] = sum(p["psnr"] > p["gray_copy_psnr"] for p in photos) / len(photos)
    return scores, photos


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    require(cfg, checkpoint="<path of last.pt/best.pt>, runs:/<run_id>/model or models:/<name>@<alias>")
    check(cfg)
    import torch

    from colorize import checkpoint, data, wrapper
    from colorize.colorize import input_files
    from colorize.device import pick_device
    from colorize.losses import LOSSES
    from colorize.metrics import baselines, evaluate

    device = pick_device(cfg.device, key="device")
    photos = input_files(Path(cfg.input)) if cfg.input else []
    local = [] if cfg.checkpoint.startswith(("runs:/", "models:/")) else [Path(cfg.checkpoint)]
    output = report_path(cfg.output, [*local, *photos])
    model, trained = checkpoint.load_model(cfg.checkpoint, cfg.tracking.uri, cfg.temperature, cfg.saturation)
    if cfg.input:
        return evaluate_photos(cfg, model.to(device), trained, photos, output, device)
    # The data the model was trained on, with the keys the command line gives (data=..., data.limit=...).
    given = {key: value for key, value in OmegaConf.to_container(cfg.data).items() if value not in (None, "???")}
    data_cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), trained["data"], given)
    check(OmegaConf.create({"data": data_cfg}))
    images, split_name = data.load_test(data.Source.from_config(data_cfg, cfg.paths.cache_dir), device)
    if model.fixed_size is not None and images.rgb.shape[-1] != model.fixed_size:
        raise ColorizeError(
            f"data.image_size={images.rgb.shape[-1]} but the checkpoint's model works at {model.fixed_size} only"
        )
    loss_fn = (
        checkpoint.rebuild(trained["loss"], LOSSES, "loss", cfg.checkpoint) if "loss" in trained else torch.nn.MSELoss()
    )
    model = model.to(device)
    result = {"model": evaluate(model, images, loss_fn, cfg.batch_size)}
    reference = baselines(images, cfg.batch_size)
    for name in BASELINES:
        result[name] = {c: reference[f"{name}_{c}"] for c in METRICS}
    report = {
        "checkpoint": cfg.checkpoint,
        "data": split_name,
        "images": len(images),
        "model_target": trained["model"].get("target", "rgb"),
        "model_parameters": wrapper.parameter_count(model),
        "metrics": result,
    }
    write_report(report, output)
    print(f"{cfg.checkpoint} on {split_name} ({len(images)} images):\n{table(result)}\n")
    print(summary.of_evaluation(cfg.checkpoint, output, result["model"], result["gray_copy"]), flush=True)
    return report


def evaluate_photos(
    cfg: DictConfig, model: "Colorizer", trained: dict, files: list[Path], output: Path, device: "torch.device"
) -> dict[str, Any]:
    from colorize import wrapper
    from colorize.colorize import check_resolution

    source = Path(cfg.input)
    size = trained["data"]["image_size"]
    check_resolution(model, size, cfg.resolution)
    scores, photos = score_photos(model, files, size, cfg.resolution, device)
    report = {
        "checkpoint": cfg.checkpoint,
        "data": f"photos in {source}, each at its own size (resolution={cfg.resolution.value})",
        "images": len(files),
        "model_target": trained["model"].get("target", "rgb"),
        "model_parameters": wrapper.parameter_count(model),
        "metrics": scores,
        "photos": photos,
    }
    write_report(report, output)
    ahead = scores["model"]["ahead_of_gray_copy"]
    print(f"{cfg.checkpoint} on {report['data']} ({len(files)} photos):\n{table(scores)}\n")
    print(f"ahead of the gray copy (per-photo PSNR) on {ahead:.0%} of the photos; each photo's row in the report")
    print(
        summary.of_evaluation(cfg.checkpoint, output, scores["model"], scores["gray_copy"], photos=cfg.input),
        flush=True,
    )
    return report


def report_path(output: Optional[str], inputs: list[Path]) -> Path:
    """Where the JSON report goes, checked before any work: never a folder, one of the command's own
    inputs (the checkpoint, the photos), or an existing file that is not an earlier report."""
    path = Path(output) if output else Path(HydraConfig.get().runtime.output_dir) / "metrics.json"
    if path.is_dir():
        raise ColorizeError(f"output={path} is a folder: give the path of the JSON report to write")
    atomic.refuse_inputs(path, inputs, "output")
    if path.exists() and not is_report(path):
        raise ColorizeError(
            f"output={path} exists and is not a report of colorize.evaluate: it is never written over; choose another path"
        )
    return path


def is_report(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            if file.read(1) != b"{":  # a checkpoint, a photo: rejected without reading it whole
                return False
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"checkpoint", "metrics"} <= set(report)


def write_report(report: dict[str, Any], path: Path) -> None:
    text = json.dumps(report, indent=2) + "\n"
    atomic.write(path, lambda tmp: tmp.write_text(text))


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    cli.run(evaluate_checkpoint, cfg)


if __name__ == "__main__":
    main()
