"""Structured-config schemas: types come from the dataclasses, value ranges from `check`."""

import math
from dataclasses import dataclass, field, fields, make_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from colorize.errors import ColorizeError


class DataSource(str, Enum):
    sample = "sample"
    cifar10 = "cifar10"
    folder = "folder"


class OnBadImage(str, Enum):
    error = "error"
    skip = "skip"


class Target(str, Enum):
    rgb = "rgb"  # the net predicts RGB from OpenCV's gray (the seed)
    lab = "lab"  # the net predicts ab from L; the output keeps the true L
    # The net predicts Cb and Cr (BT.601, whose luma Y is OpenCV's gray); Y is the input gray itself,
    # so the output keeps every pixel of it, and an untrained net (its last layer starts at zero)
    # returns exactly the gray copy: training can only add colour to it.
    ycbcr = "ycbcr"


class Augment(str, Enum):
    none = "none"
    flip = "flip"  # left-right flips of the training images, at random per image
    crop = "crop"  # flips, and random crops of images held at image_size * 9/8


class Resolution(str, Enum):
    trained = "trained"  # run the net at data.image_size, upsample its prediction to the photo
    native = "native"  # run the net on the full photo (fully convolutional models only)


@dataclass
class PathsConfig:
    root_dir: str = "${project_root:}"  # the repository of an editable install, else the working directory
    cache_dir: str = "${paths.root_dir}/.cache"  # decoded data sets, as .npz tensors
    data_dir: str = "${paths.root_dir}/data"  # where data=cifar10 looks for cifar10-jpeg/


@dataclass
class DataConfig:
    source: DataSource = DataSource.sample  # chosen by the data group: sample is embedded in the package
    root: Optional[str] = None  # data=folder: a folder of jpg/png images (searched recursively)
    image_size: int = 32  # pixels, square
    val_fraction: float = 0.2  # share of the images held out as the val split
    limit: Optional[int] = None  # cap on the number of images, for quick runs
    seed: int = 0  # the split's seed, kept apart from trainer.seed so the val set stays fixed
    on_bad_image: OnBadImage = OnBadImage.error  # an unreadable image: stop naming it, or skip it with a warning
    # Training images flipped left-right at random (flip), and also cut at a random place from
    # images held at image_size * 9/8 (crop; val images are then cut in the middle). Every batch
    # gets new draws.
    augment: Augment = Augment.none
    in_memory: str = "auto"  # true, false (stream a folder's files), or auto: stream when the decoded set would not fit
    workers: Optional[int] = None  # decoding processes when streaming; null: min(4, CPU cores)
    # Folders of more images for training only (resized and centre-cropped to image_size): the
    # val split, and so the metric a sweep chooses by, stays that of `root`.
    extra: list[str] = field(default_factory=list)


# The evaluate command's `data`: every key of DataConfig, where None keeps the value the checkpoint
# was trained with, so `data.limit=200` alone changes only the limit.
DataOverrides = make_dataclass("DataOverrides", [(f.name, Optional[f.type], None) for f in fields(DataConfig)])


@dataclass
class ModelConfig:
    _target_: str = "colorize.models.convnet.ConvNet"
    width: int = 1  # channel multiplier; 1 is the seed
    target: Target = Target.rgb  # the colour space the net predicts in (not passed to the net)
    # ycbcr only: score each pixel's chroma over bins x bins classes (loss=bins) instead of regressing
    # it, and read out the mean of the scores sharpened by `temperature` (1: the plain mean; lower:
    # more vivid). Neither is passed to the net.
    bins: int = 0
    temperature: float = 0.38  # Zhang et al. 2016's choice
    # lab and ycbcr: the predicted colour is multiplied by this when read out. A regression's colour
    # is the mean of the plausible ones, so it is washed out; for a calibrated prediction the MSE
    # grows by (saturation - 1)^2 times the predicted colour's power: 1.5 keeps 3/4 of the MSE
    # gained over the gray copy for 1.5x the colourfulness. Not trained: it can change after training.
    saturation: float = 1.0


@dataclass
class ConvNetConfig(ModelConfig):
    image_size: int = 32  # the dense decoder fixes the output size


@dataclass
class ConvAEConfig(ModelConfig):
    _target_: str = "colorize.models.convae.ConvAE"
    width: int = 32  # channels of the first level; each of the `depth` levels below doubles them
    depth: int = 3  # 2x downsamplings: 32x32 -> 4x4 at the bottleneck


@dataclass
class UNetConfig(ConvAEConfig):
    _target_: str = "colorize.models.unet.UNet"
    # Decoder levels left out at the top: the output is made at 1 / 2^out_level of the image's
    # size and upsampled bilinearly. Colour varies slowly (JPEG stores it at half resolution), so
    # chroma targets lose little, and the costliest full-resolution layers go.
    out_level: int = 0


@dataclass
class LossConfig:
    _target_: str = "torch.nn.MSELoss"


@dataclass
class SmoothL1Config(LossConfig):
    _target_: str = "torch.nn.SmoothL1Loss"
    # Quadratic below this error, linear above; 1.0 would be MSE/2 here (targets in [0, 1] or [-1, 1]).
    beta: float = 0.05


@dataclass
class LogMSEConfig(LossConfig):
    _target_: str = "colorize.losses.LogMSE"
    floor: float = 1e-4  # per-image MSE added inside the log: errors below it (above 40 dB) barely count


@dataclass
class BinsLossConfig(LossConfig):
    _target_: str = "colorize.bins.RebalancedCrossEntropy"
    mix: float = 0.5  # rare colours weigh up to 1 / mix times more; 1: plain cross entropy


@dataclass
class OptimizerConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True  # parameters are bound after the model exists
    lr: float = 1e-3  # learning rate
    weight_decay: float = 0.0  # L2 penalty (adam), decoupled decay (adamw)


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # Nesterov momentum


@dataclass
class TrainerConfig:
    epochs: int = 20  # the quick start on data=sample: well under 3 minutes on 2 CPU cores
    batch_size: int = 100  # images per optimiser step, over all processes
    seed: int = 0  # weights, batch order and augmentation draws
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    resume: Optional[str] = None  # path of a last.pt / best.pt to continue from
    progress: bool = True  # tqdm bar with the running loss
    precision: str = "auto"  # auto (bf16 on CUDA, else 32), 32, or bf16 (autocast)
    channels_last: bool = False  # NHWC memory format for the model and inputs
    compile: bool = False  # torch.compile the model (about 30 s of compiling on a CPU)
    lr_schedule: str = "constant"  # or cosine: the lr decays to 0 over trainer.epochs, per epoch


@dataclass
class TrackingConfig:
    # The MLflow tracking store: a database URI or an http(s):// server.
    uri: str = "sqlite:///${paths.root_dir}/mlruns/mlflow.db"
    experiment: str = "colorize"  # MLflow experiment the runs go to
    run_name: Optional[str] = None  # null: the preset or model-width-target, and the run id's first 6 characters
    grid_every: int = 5  # epochs between sample grids (first and last always)
    grid_images: int = 8  # val images in each sample grid; 0: no grids
    register: Optional[str] = None  # a registered model's name: the run's model becomes its next version
    system_metrics: bool = False  # MLflow's CPU, memory (and GPU) metrics; needs the system-metrics extra


# The figures colorize.metrics.evaluate computes, in its order: the one list of metric names (each
# run logs them as val_<name>, evaluate's table has a column each, baselines are <baseline>_<name>).
METRICS = (
    "psnr",
    "psnr_per_image",
    "ssim",
    "colorfulness",
    "colorfulness_ratio",
    "colorfulness_gap",
    "mean_ab_close",
    "auc",
    "auc_rebalanced",
)
# What a run reports as its result: `train` returns it, and a sweep optimises it. Every val_* metric
# a run logs can be chosen (val_loss is in the model's loss space; the rest are on RGB).
OBJECTIVE_METRICS = ("val_loss", *(f"val_{name}" for name in METRICS))


@dataclass
class ObjectiveConfig:
    # One metric, or a list of them (a sweep over several objectives: a Pareto front); Any because
    # OmegaConf has no str-or-list type, so `objectives` checks them instead.
    metric: Any = "val_psnr"  # dB, of the last trained epoch
    direction: Any = "maximize"  # or minimize (val_loss); a list: one per metric


@dataclass
class TrainConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = None  # a group option: `_target_` picks the class
    optimizer: Any = None  # a group option, `_partial_` so parameters bind later
    loss: Any = None  # a group option: `_target_` picks the loss module
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)


@dataclass
class EvaluateConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # where runs:/ and models:/ URIs are looked up
    # A last.pt / best.pt path, runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>.
    checkpoint: str = MISSING
    data: DataOverrides = field(default_factory=DataOverrides)  # null keys: the checkpoint's own data settings
    # A folder of photos (or one photo) instead of `data`: each photo's gray is coloured as the photo
    # command colours it (at `resolution`) and scored against the photo at its own size.
    input: Optional[str] = None
    # trained: the net at its training size, the colour upsampled; native: at the photo's own size.
    resolution: Resolution = Resolution.trained
    temperature: Optional[float] = None  # a bins model's read-out temperature instead of its trained one
    saturation: Optional[float] = None  # a lab or ycbcr model's read-out saturation instead of its trained one
    batch_size: Optional[int] = None  # images per no-grad batch; null: 1,000 at 32 px, fewer for bigger images
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    output: Optional[str] = None  # the JSON file; None: metrics.json in the Hydra output folder


@dataclass
class ColorizeConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # A last.pt / best.pt path, runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>.
    checkpoint: str = MISSING
    input: str = MISSING  # an image file, or a folder searched recursively
    output: str = MISSING  # the folder the PNGs are written to
    # trained: the net at its training size, the colour upsampled; native: at the photo's own size.
    resolution: Resolution = Resolution.trained
    temperature: Optional[float] = None  # a bins model's read-out temperature instead of its trained one
    saturation: Optional[float] = None  # a lab or ycbcr model's read-out saturation instead of its trained one
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    progress: bool = True  # tqdm bar over the photos


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: the form of MLflow params and of config comparisons."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def project_root() -> str:
    # Editable installs (the README's) live in the repo: its pyproject marks the root. Elsewhere
    # fall back to the working directory, as Hydra does for relative paths.
    repo = Path(__file__).resolve().parents[1]
    return str(repo if (repo / "pyproject.toml").exists() else Path.cwd())


def register() -> None:
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", project_root)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="colorize_schema", node=ColorizeConfig)
    # Group files extend these with `- /schema/<group>/<name>@_here_` in their defaults.
    cs.store(group="schema/model", name="convnet", node=ConvNetConfig)
    cs.store(group="schema/model", name="convae", node=ConvAEConfig)
    cs.store(group="schema/model", name="unet", node=UNetConfig)
    cs.store(group="schema/loss", name="loss", node=LossConfig)
    cs.store(group="schema/loss", name="smooth_l1", node=SmoothL1Config)
    cs.store(group="schema/loss", name="bins", node=BinsLossConfig)
    cs.store(group="schema/loss", name="log_mse", node=LogMSEConfig)
    cs.store(group="schema/optimizer", name="optimizer", node=OptimizerConfig)
    cs.store(group="schema/optimizer", name="sgd", node=SGDConfig)


_RULES: list[tuple[str, Any, str]] = [
    ("optimizer.lr", lambda v: math.isfinite(v) and v > 0, "must be finite and > 0"),
    ("optimizer.weight_decay", lambda v: math.isfinite(v) and v >= 0, "must be finite and >= 0"),
    ("model.width", lambda v: v >= 1, "must be >= 1"),
    ("model.depth", lambda v: v >= 1, "must be >= 1"),
    ("model.out_level", lambda v: v >= 0, "must be >= 0"),
    ("loss.beta", lambda v: math.isfinite(v) and v > 0, "must be finite and > 0"),
    ("loss.floor", lambda v: math.isfinite(v) and v > 0, "must be finite and > 0"),
    ("loss.mix", lambda v: 0 < v <= 1, "must be in (0, 1]"),
    ("model.bins", lambda v: v == 0 or v >= 2, "must be 0 (regress the colour) or >= 2"),
    ("model.temperature", lambda v: math.isfinite(v) and v > 0, "must be finite and > 0"),
    ("temperature", lambda v: v is None or (math.isfinite(v) and v > 0), "must be finite and > 0"),
    ("model.saturation", lambda v: math.isfinite(v) and v > 0, "must be finite and > 0"),
    ("saturation", lambda v: v is None or (math.isfinite(v) and v > 0), "must be finite and > 0"),
    ("trainer.batch_size", lambda v: v >= 1, "must be >= 1"),
    ("trainer.epochs", lambda v: v >= 1, "must be >= 1"),
    ("data.val_fraction", lambda v: 0 < v < 1, "must be in (0, 1)"),
    ("data.image_size", lambda v: v >= 8, "must be >= 8"),
    ("data.limit", lambda v: v is None or v >= 2, "must be >= 2 or null"),
    ("data.in_memory", lambda v: str(v).lower() in ("auto", "true", "false"), "must be auto, true or false"),
    ("data.workers", lambda v: v is None or v >= 0, "must be >= 0 or null"),
    ("tracking.experiment", lambda v: bool(v.strip()), "must name an MLflow experiment, not be empty"),
    ("tracking.grid_every", lambda v: v >= 1, "must be >= 1"),
    ("tracking.grid_images", lambda v: v >= 0, "must be >= 0 (0: no sample grids)"),
    ("trainer.precision", lambda v: v in ("auto", "32", "bf16"), "must be auto, 32 or bf16"),
    ("trainer.lr_schedule", lambda v: v in ("constant", "cosine"), "must be constant or cosine"),
]


def listed(value: Any) -> list:
    return list(value) if OmegaConf.is_list(value) else [value]


def objectives(cfg: DictConfig) -> list[tuple[str, str]]:
    """(metric, direction) for each of objective.metric, objective.direction: one value each, or two
    lists of the same length."""
    metrics, directions = listed(cfg.objective.metric), listed(cfg.objective.direction)
    if len(metrics) != len(directions):
        raise ColorizeError(
            f"objective.metric has {len(metrics)} metrics but objective.direction {len(directions)} directions: give one per metric"
        )
    for metric in metrics:
        if metric not in OBJECTIVE_METRICS:
            raise ColorizeError(f"objective.metric={metric} must be one of {', '.join(OBJECTIVE_METRICS)}")
    for direction in directions:
        if direction not in ("minimize", "maximize"):
            raise ColorizeError(f"objective.direction={direction} must be minimize or maximize")
    if len(set(metrics)) < len(metrics):
        raise ColorizeError(f"objective.metric lists a metric twice: {', '.join(metrics)}")
    return list(zip(metrics, directions))


def check(cfg: DictConfig) -> None:
    """Stop before any work on a value out of range, naming the key."""
    if OmegaConf.select(cfg, "objective") is not None:
        objectives(cfg)
    for key, ok, rule in _RULES:
        value = OmegaConf.select(cfg, key)
        if value is not None or key == "data.limit":
            if not ok(value):
                raise ColorizeError(f"{key}={value} {rule}")
    depth, size = OmegaConf.select(cfg, "model.depth"), OmegaConf.select(cfg, "data.image_size")
    if depth is not None and size is not None and size // 2**depth < 1:
        deepest = size.bit_length() - 1
        raise ColorizeError(
            f"model.depth={depth} halves data.image_size={size} below 1 pixel at the bottleneck: at most {deepest} at this size"
        )
    out_level = OmegaConf.select(cfg, "model.out_level")
    if out_level is not None and depth is not None and out_level > depth:
        raise ColorizeError(
            f"model.out_level={out_level} must be at most model.depth={depth}: the decoder has {depth} levels"
        )
    classes, loss = OmegaConf.select(cfg, "model.bins"), OmegaConf.select(cfg, "loss._target_")
    saturation = OmegaConf.select(cfg, "model.saturation")
    if saturation is not None and saturation != 1 and OmegaConf.select(cfg, "model.target") == Target.rgb:
        raise ColorizeError(
            f"model.saturation={saturation} needs model.target=lab or ycbcr: it scales a predicted colour, and rgb predicts no colour apart"
        )
    if classes and OmegaConf.select(cfg, "model.target") != Target.ycbcr:
        raise ColorizeError(f"model.bins={classes} needs model.target=ycbcr: the bins are of Cb and Cr")
    if loss is not None and (classes > 0 if classes is not None else False) != loss.endswith("RebalancedCrossEntropy"):
        raise ColorizeError(
            "model.bins > 0 and loss=bins go together: the bins loss scores the bins, the other losses a regressed colour"
        )
    if OmegaConf.select(cfg, "data") is not None and cfg.data.source == DataSource.folder:
        root = cfg.data.root
        if not root:
            raise ColorizeError("data.root is required for data=folder (a folder of jpg/png images)")
        if not Path(root).is_dir():
            raise ColorizeError(f"data.root={root} is not a folder")


def require(cfg: DictConfig, **hints: str) -> None:
    """A one-line error for each mandatory key left at ??? (Hydra's own message is a traceback)."""
    for key, hint in hints.items():
        if OmegaConf.is_missing(cfg, key):
            raise ColorizeError(f"{key} is required: {key}={hint}")
