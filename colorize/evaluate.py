"""`python -m colorize.evaluate checkpoint=...`: a trained model against the baselines on test data."""

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from colorize import cli
from colorize.config import DataConfig, check, register, require
from colorize.errors import ColorizeError

log = logging.getLogger(__name__)
register()

COLUMNS = ("psnr", "psnr_per_image", "ssim", "colorfulness", "colorfulness_ratio")
BASELINES = ("gray_copy", "lab_zero_ab")


def table(rows: dict[str, dict[str, float]]) -> str:
    header = f"{'':<12}" + "".join(f"{c:>20}" for c in COLUMNS)
    lines = [f"{name:<12}" + "".join(f"{row[c]:>20.4f}" for c in COLUMNS) for name, row in rows.items()]
    return "\n".join([header, *lines])


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    require(cfg, checkpoint="<path of last.pt/best.pt>, runs:/<run_id>/model or models:/<name>@<alias>")
    check(cfg)
    import torch
    from hydra.utils import instantiate

    from colorize import checkpoint, data, wrapper
    from colorize.device import pick_device
    from colorize.metrics import baselines, evaluate

    device = pick_device(cfg.device, key="device")
    model, trained = checkpoint.load_model(cfg.checkpoint, cfg.tracking.uri)
    # The data the model was trained on, unless the command line names other data.
    data_cfg = cfg.data if cfg.data is not None else OmegaConf.merge(OmegaConf.structured(DataConfig), trained["data"])
    check(OmegaConf.create({"data": data_cfg}))
    images, split_name = data.load_test(data.Source.from_config(data_cfg, cfg.paths.cache_dir), device)
    if model.fixed_size is not None and images.rgb.shape[-1] != model.fixed_size:
        raise ColorizeError(f"data.image_size={images.rgb.shape[-1]} but the checkpoint's model works at {model.fixed_size} only")
    loss_fn = instantiate(trained["loss"]) if "loss" in trained else torch.nn.MSELoss()
    model = model.to(device)
    result = {"model": evaluate(model, images, loss_fn, cfg.batch_size)}
    reference = baselines(images, cfg.batch_size)
    for name in BASELINES:
        result[name] = {c: reference[f"{name}_{c}"] for c in COLUMNS}
    report = {
        "checkpoint": cfg.checkpoint,
        "data": split_name,
        "images": len(images),
        "model_target": trained["model"].get("target", "rgb"),
        "model_parameters": wrapper.parameter_count(model),
        "metrics": result,
    }
    output = Path(cfg.output) if cfg.output else Path(HydraConfig.get().runtime.output_dir) / "metrics.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{cfg.checkpoint} on {split_name} ({len(images)} images):\n{table(result)}\nwritten to {output}")
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    cli.run(evaluate_checkpoint, cfg)


if __name__ == "__main__":
    main()
