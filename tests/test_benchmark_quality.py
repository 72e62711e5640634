import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import PROJECT


@pytest.mark.slow
def test_quality_benchmark_writes_its_table(tmp_path: Path) -> None:
    # Tiny data and one epoch: this checks that the script runs every preset and writes the table.
    rng = np.random.default_rng(0)
    for part, count in (("train", 60), ("test", 10)):
        (tmp_path / "cifar" / part).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(tmp_path / "cifar" / part / f"{i}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- quality-table:start -->\nOLD TABLE\n<!-- quality-table:end -->\nafter\n")
    args = [
        "--train",
        str(tmp_path / "cifar" / "train"),
        "--root",
        str(tmp_path),
        "--out",
        str(tmp_path / "quality"),
        "--page",
        str(readme),
    ]
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "benchmarks" / "quality.py"),
            *args,
            "--override",
            "trainer.epochs=1",
            "--write",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "OLD TABLE" not in text
    for row in ("gray copy (baseline)", "lab zero ab (baseline)", "`seed convnet`", "`convae`", "`unet`", "`best_cpu`"):
        assert f"| {row} |" in text
    assert "test folder" in text and "(10 images;" in text
    assert "| AuC | AuC rebalanced |" in text  # Zhang et al.'s measure of colour, raw and rebalanced
