import subprocess
import sys

from tests.conftest import PROJECT


def test_throughput_benchmark_prints_its_ratios() -> None:
    # Tiny sizes: this checks that the script runs and reports, not how fast anything is.
    result = subprocess.run(
        [sys.executable, str(PROJECT / "benchmarks" / "throughput.py"), "--images", "300", "--deep-images", "200", "--repeats", "1", "--skip-startup"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("model=")]
    assert len(rows) == 2
    for row in rows:
        loop_over_bound, loop_over_seed = float(row[-2]), float(row[-1])
        assert loop_over_bound > 0 and loop_over_seed > 0
