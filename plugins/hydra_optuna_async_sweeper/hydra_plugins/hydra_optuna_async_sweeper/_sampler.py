"""The sampler a worker asks with: the configured one behind a wrapper that knows which trial it is
sampling (so a sampler error fails that trial instead of leaving it RUNNING), reseeded for every
trial from the configured seed and the trial's number (except the grid sampler, whose seed is its order).

The trial number is unique to the worker that holds the trial, however many workers start at the same
instant, so seeded workers never propose alike; one worker on a new study proposes the same values on
every run (reproducible); and a resumed study goes on with new numbers, so new values, instead of
repeating its first trials.
"""

import math
from typing import Any, Callable, Optional, Sequence

import numpy as np
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.hydra_optuna_async_sweeper import _space as search_space
from hydra_plugins.hydra_optuna_async_sweeper._errors import SweeperError, one_line
from hydra_plugins.hydra_optuna_async_sweeper.config import MOTPE_REMOVED


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class Sampler(BaseSampler):
    """Delegates to the configured sampler; with a seed, one built afresh for each trial with
    trial_seed(seed, number). `asking` is the id of the trial being sampled, from before_trial on."""

    def __init__(self, build: Callable[[Optional[int]], BaseSampler], seed: Optional[int]) -> None:
        self.build = build
        self.seed = seed
        self.sampler = build(seed)
        self.asking: Optional[int] = None

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.asking = trial._trial_id
        if self.seed is not None:
            self.sampler = self.build(trial_seed(self.seed, trial.number))
        self.sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(study, trial, space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution
    ) -> Any:
        return self.sampler.sample_independent(study, trial, name, distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Optional[Sequence[float]]
    ) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


def check_fit(target: str, space: dict[str, BaseDistribution], n_objectives: int) -> None:
    """Stop with one line when the sampler cannot search this space or this many objectives, rather
    than fail every trial (CMA-ES raises on a study of several objectives) or quietly search at
    random (CMA-ES draws choice(...) params from its independent sampler, so a space of choices only
    is never modelled). An empty space is extended by custom_search_space: nothing to judge yet."""
    name = target.rsplit(".", 1)[-1]
    if name == "raise_motpe_removed":
        raise SweeperError(f"hydra/sweeper/sampler=motpe: {MOTPE_REMOVED}")
    if name != "CmaEsSampler":
        return  # tpe, random, gp, qmc, nsgaii, nsgaiii take any space and any number of objectives; grid: grid_values
    if n_objectives > 1:
        raise SweeperError(
            f"hydra/sweeper/sampler=cmaes ({target}) optimises one objective, not {n_objectives}: use nsgaii, tpe or gp"
        )
    if space and all(isinstance(d, CategoricalDistribution) for d in space.values()):
        choices = ", ".join(space)
        raise SweeperError(
            f"hydra/sweeper/sampler=cmaes ({target}) searches numeric params only, and every param here is a choice ({choices}): "
            "each would be drawn at random; use tpe, gp or grid"
        )


def build(config: DictConfig, space: dict[str, BaseDistribution]) -> tuple[Sampler, Optional[int]]:
    """The sampler (check_fit first), and the grid's size for a grid sampler (None otherwise). Keys
    left null keep Optuna's defaults (TPE: multivariate, constant liar)."""
    settings = {k: v for k, v in OmegaConf.to_container(config, resolve=True).items() if v is not None}
    seed = settings.pop("seed", None)
    grid: Optional[dict[str, list]] = None
    if settings.get("_partial_"):  # the grid sampler takes the space as lists of values
        grid = {key: search_space.grid_values(key, dist) for key, dist in space.items()}

    def make(seed: Optional[int]) -> BaseSampler:
        sampler = instantiate(settings, seed=seed)
        return sampler if grid is None else sampler(search_space=grid)

    try:
        if grid is None:
            chosen = Sampler(make, seed)
        else:
            # Not reseeded: the seed shuffles the grid, and a trial's grid_id indexes that order, so
            # every trial and worker needs the same one or two ids can name the same point.
            chosen = Sampler(lambda _: make(seed), None)
    except Exception as error:
        raise SweeperError(f"hydra.sweeper.sampler ({settings['_target_']}): {one_line(error)}") from None
    return chosen, None if grid is None else math.prod(len(values) for values in grid.values())
