"""Where training time goes: colorize's loop against the compute bound and a seed-style pipeline;
and the streaming data path against the in-memory one.

    python benchmarks/throughput.py --data /path/to/cifar10-jpeg/train
    python benchmarks/throughput.py --skip-loop --streaming /path/to/photos/train/small
    python benchmarks/throughput.py --skip-loop --rss-folders /path/to/30k-folder /path/to/300k-folder

Every figure is measured in this one run, side by side; the three training paths alternate over
`--repeats` rounds and the median is kept, so a busy machine affects them alike.
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import to_tensor

from colorize import wrapper
from colorize.color import as_float
from colorize.config import register
from colorize.device import pick_device
from colorize.folders import list_images, load_folder
from colorize.images import Split, from_rgb
from colorize.loop import Settings, Training, train_epoch

PROJECT = Path(__file__).resolve().parents[1]
BATCH = 100  # the seed's batch size


class SeedStyleDataset(Dataset):
    """The seed's pipeline: per-item OpenCV grayscale and ToTensor in Python."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb

    def __len__(self) -> int:
        return len(self.rgb)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.rgb[i]
        return to_tensor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)), to_tensor(image)


def build(model_overrides: list[str], device: torch.device) -> tuple[wrapper.Colorizer, torch.optim.Optimizer]:
    with initialize_config_dir(str(PROJECT / "conf"), version_base="1.3"):
        cfg = compose("train", model_overrides)
    torch.manual_seed(0)
    model = wrapper.colorizer(cfg.model).to(device)
    return model, instantiate(cfg.optimizer)(model.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(run: Callable[[], None], device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - started


def measure(
    model_overrides: list[str],
    rgb: np.ndarray,
    device: torch.device,
    settings: Settings,
    repeats: int,
    compile_net: bool = False,
) -> dict[str, float]:
    model, optimizer = build(model_overrides, device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_net:
        model.net.compile()
    loss_fn = nn.MSELoss()
    images = from_rgb(rgb).to(device)
    shuffle = torch.Generator(device=device).manual_seed(0)
    fixed = images[:BATCH]
    fixed_gray, fixed_rgb = as_float(fixed.gray), as_float(fixed.rgb)
    steps = len(images) // BATCH
    loader = DataLoader(SeedStyleDataset(rgb), batch_size=BATCH, shuffle=True, num_workers=0)

    training = Training(Split(images, images[:0]), model, optimizer, loss_fn, settings, shuffle, epochs=1)

    def colorize_loop() -> None:
        train_epoch(training)

    def compute_bound() -> None:
        model.train()
        for _ in range(steps):
            loss = loss_fn(model.predict(fixed_gray), fixed_rgb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def seed_style() -> None:
        model.train()
        for gray, target in loader:
            gray, target = gray.to(device), target.to(device)
            loss = loss_fn(model.predict(gray), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    paths = {"loop": colorize_loop, "bound": compute_bound, "seed_style": seed_style}
    for run in paths.values():  # warm-up: allocator, kernels, caches
        timed(run, device)
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, run in paths.items():
            seconds[name].append(timed(run, device))
    return {name: len(images) / statistics.median(s) for name, s in seconds.items()}


def seconds_to_first_step(args: list[str]) -> float:
    """Wall time from launching `python -m colorize.train` to its 'training starts' line."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "colorize.train", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    elapsed = float("nan")
    for line in proc.stdout:
        if "training starts" in line and elapsed != elapsed:
            elapsed = time.perf_counter() - started
    if proc.wait() != 0:
        raise SystemExit(f"training run failed: {' '.join(args)}")
    return elapsed


# Runs colorize.train in this child and reports its peak RSS. (Not its children's: a child forked to
# exec git, or a DataLoader worker, starts with the parent's pages counted, which it shares.)
RSS_PROBE = (
    "import resource, runpy, sys\n"
    "sys.argv = ['colorize.train', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('colorize.train', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    "print('rss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def one_epoch(args: list[str]) -> tuple[float, float]:
    """images/s of a 1-epoch `python -m colorize.train` run, and its peak RSS (GiB)."""
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"training run failed: {' '.join(args)}\n{out.stderr[-2000:]}")
    speed = float(next(line for line in out.stdout.splitlines() if "epoch 1/1" in line).split()[-2])
    kib = next(line for line in out.stdout.splitlines() if line.startswith("rss ")).split()[1]
    return speed, int(kib) / 2**20


def streaming_table(folder: Path, root: str, limit: int) -> None:
    print(
        f"\nin memory against streaming, one epoch of model=convae (width 16) on {limit} images of {folder}, tracking on"
    )
    print(f"{'size':>5} {'path':<10} {'img/s':>7} {'peak RSS GiB':>13}")
    for size in (32, 128):
        for path, in_memory in (("in memory", "true"), ("streaming", "false")):
            args = [
                f"paths.root_dir={root}",
                "data=folder",
                f"data.root={folder}",
                f"data.limit={limit}",
                f"data.image_size={size}",
                f"data.in_memory={in_memory}",
                "model=convae",
                "model.width=16",
                "trainer.epochs=1",
                "trainer.progress=false",
                "tracking.grid_images=0",
            ]
            speed, peak_gib = one_epoch(args)
            print(f"{size:>5} {path:<10} {speed:>7.0f} {peak_gib:>13.2f}")


def rss_table(folders: list[Path], root: str) -> None:
    print("\npeak RSS of a 1-epoch streaming run (seed ConvNet, 32 px), by the size of the folder")
    print(f"{'images':>8} {'peak RSS GiB':>13}  folder")
    for folder in folders:
        args = [
            f"paths.root_dir={root}",
            "data=folder",
            f"data.root={folder}",
            "data.in_memory=false",
            "trainer.epochs=1",
            "trainer.progress=false",
            "tracking.grid_images=0",
        ]
        _, peak_gib = one_epoch(args)
        print(f"{len(list_images(folder)):>8} {peak_gib:>13.2f}  {folder}")


def seconds_of(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "colorize.train", *args], capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="CIFAR-10 JPEG train folder; default: random images of that shape")
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=["32", "bf16"], default=None, help="default: bf16 on CUDA, else 32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deep-model", default="model=unet", help="overrides of the deeper model")
    parser.add_argument("--deep-images", type=int, default=None, help="fewer images for a slow deep model")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the net (compiling is not timed: it happens in the warm-up)",
    )
    parser.add_argument("--skip-loop", action="store_true", help="only the streaming or RSS tables")
    parser.add_argument(
        "--streaming", type=Path, help="a folder of photos: in memory against streaming at 32 and 128 px"
    )
    parser.add_argument("--streaming-images", type=int, default=2000, help="the data.limit of the streaming table")
    parser.add_argument(
        "--rss-folders", type=Path, nargs="+", help="folders of different sizes: streaming peak RSS of each"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        if args.streaming:
            streaming_table(args.streaming, root, args.streaming_images)
        if args.rss_folders:
            rss_table(args.rss_folders, root)
    if args.skip_loop:
        return
    register()
    device = pick_device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "32")
    settings = Settings(
        BATCH,
        autocast=torch.bfloat16 if precision == "bf16" else None,
        channels_last=args.channels_last,
        progress=False,
    )
    if args.data:
        rgb = load_folder(args.data, 32, skip_bad=False, cache_dir=Path(tempfile.mkdtemp()))[: args.images]
        source = f"CIFAR-10 (JPEG copy) {args.data}"
    else:
        rgb = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
        source = "random 32x32 images"
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"precision {precision}, channels_last {args.channels_last}, compile {args.compile}, batch {BATCH}, {source}, median of {args.repeats}, tracking off"
    )
    print(
        f"{'model':<34} {'images':>7} {'loop img/s':>11} {'bound img/s':>12} {'seed-style img/s':>17} {'loop/bound':>11} {'loop/seed':>10}"
    )
    models = [("model=convnet model.width=1", args.images), (args.deep_model, args.deep_images or args.images)]
    for overrides, count in models:
        speed = measure(overrides.split(), rgb[:count], device, settings, args.repeats, args.compile)
        print(
            f"{overrides:<34} {count:>7} {speed['loop']:>11.0f} {speed['bound']:>12.0f} {speed['seed_style']:>17.0f} "
            f"{speed['loop'] / speed['bound']:>11.3f} {speed['loop'] / speed['seed_style']:>10.2f}"
        )
    if args.skip_startup or not args.data:
        return
    with tempfile.TemporaryDirectory() as root:
        run = [
            f"paths.root_dir={root}",
            "data=folder",
            f"data.root={args.data}",
            "trainer.epochs=1",
            "trainer.progress=false",
        ]
        cold = seconds_to_first_step(run)  # empty cache, new tracking store
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
        warm = seconds_to_first_step(run)  # cached folder, existing store
        help_s = seconds_of(["--help"])
        error_s = seconds_of([f"paths.root_dir={root}", "optimizer.lr=-1"])
    print(f"start to first training step: cold {cold:.1f} s, warm {warm:.1f} s (target <= 5 s)")
    print(f"peak resident memory of a 1-epoch run on the folder: {peak_gib:.2f} GiB (target <= 2.5 GiB)")
    print(f"`python -m colorize.train --help`: {help_s:.2f} s; a config error (optimizer.lr=-1): {error_s:.2f} s")


if __name__ == "__main__":
    main()
