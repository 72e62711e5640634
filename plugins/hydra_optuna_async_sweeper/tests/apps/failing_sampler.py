from typing import Any, Optional

from optuna.samplers import RandomSampler


class FailingSampler(RandomSampler):
    """A sampler that breaks while sampling, as CmaEsSampler does without its package."""

    def __init__(self, seed: Optional[int] = None) -> None:
        super().__init__(seed=seed)

    def sample_independent(self, *args: Any, **kwargs: Any) -> Any:
        raise ImportError("the sampler's package is missing")
