import subprocess
import sys

import pytest

from tests.conftest import PROJECT


def test_throughput_benchmark_measures_both_models_side_by_side() -> None:
    # Tiny sizes: this checks what the script reports, not how fast anything is.
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "benchmarks" / "throughput.py"),
            "--images",
            "300",
            "--deep-images",
            "200",
            "--repeats",
            "1",
            "--skip-startup",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("model=")]
    assert [row[0] for row in rows] == ["model=convnet", "model=unet"]
    for row in rows:
        images, loop, bound, seed_style, loop_over_bound, loop_over_seed = (float(v) for v in row[-6:])
        assert images == (300 if row[0] == "model=convnet" else 200)
        # The ratios are those of the measured columns, not figures of their own; the columns are
        # printed rounded to whole images/s, so each is known to +-0.5.
        for ratio, numerator, denominator in ((loop_over_bound, loop, bound), (loop_over_seed, loop, seed_style)):
            rounding = numerator / denominator * (0.5 / numerator + 0.5 / denominator) + 0.01
            assert ratio == pytest.approx(numerator / denominator, abs=rounding)
