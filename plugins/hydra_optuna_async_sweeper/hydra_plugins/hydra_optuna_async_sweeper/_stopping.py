"""When a study ends before n_trials: hydra.sweeper.stop.patience (N finished trials in a row that did
not improve on the best value) and hydra.sweeper.stop.target (a trial reached this value).

The first worker to find a rule met keeps the decision in the study (a system attribute), so every
worker, on any machine and whatever its own stop settings, stops asking for trials; trials already
running finish. The decision stands for the budget it was made under: a rerun with a larger n_trials
(the README's way to run more) goes on, its patience counting only trials finished after the stop.
"""

import math
from dataclasses import dataclass
from typing import Any, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.hydra_optuna_async_sweeper._errors import SweeperError
from hydra_plugins.hydra_optuna_async_sweeper._study import SYSTEM

KEY = SYSTEM + "stop"  # study system attribute: {"reason", "n_trials" (the budget), "finished" (trials finished then)}


@dataclass(frozen=True)
class Rule:
    patience: Optional[int]
    target: Optional[float]
    maximize: bool

    @classmethod
    def from_settings(cls, settings: Any, directions: list[str]) -> Optional["Rule"]:
        """The rule of hydra.sweeper.stop, None when neither key is set; one line for a bad value."""
        patience, target = settings.get("patience"), settings.get("target")
        if patience is None and target is None:
            return None
        if len(directions) > 1:
            raise SweeperError(
                f"hydra.sweeper.stop needs one objective: patience and target compare one value, and this study has {len(directions)}"
            )
        if patience is not None and patience < 1:
            raise SweeperError(f"hydra.sweeper.stop.patience={patience} must be >= 1 (or null)")
        if target is not None and not math.isfinite(target):
            raise SweeperError(f"hydra.sweeper.stop.target={target} must be finite (or null)")
        return cls(patience, target, directions[0] == "maximize")

    def better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than

    def reason(self, finished: list[FrozenTrial], since: int) -> Optional[str]:
        """Why the study stops, given its finished trials in the order they finished; patience counts
        only those from index `since` on. Equal values are no improvement."""
        best: Optional[FrozenTrial] = None
        stale = 0
        for index, trial in enumerate(finished):
            if trial.state == TrialState.COMPLETE and (best is None or self.better(trial.value, best.value)):
                best, stale = trial, 0
                if self.target is not None and (trial.value == self.target or self.better(trial.value, self.target)):
                    return f"trial {trial.number} reached {trial.value:.6g} (hydra.sweeper.stop.target={self.target:g})"
            elif index >= since:
                stale += 1
        if best is not None and self.patience is not None and stale >= self.patience:
            return f"{stale} finished trials in a row did not improve on trial {best.number}'s {best.value:.6g} (hydra.sweeper.stop.patience={self.patience})"
        return None


def kept(study: optuna.Study) -> Optional[dict[str, Any]]:
    """The stop decision kept in the study, if any worker made one."""
    return study._storage.get_study_system_attrs(study._study_id).get(KEY)


def keep(study: optuna.Study, reason: str, n_trials: int, finished: int) -> None:
    study._storage.set_study_system_attr(
        study._study_id, KEY, {"reason": reason, "n_trials": n_trials, "finished": finished}
    )


def standing(study: optuna.Study, n_trials: int) -> Optional[str]:
    """The kept decision's reason, if it was made under this budget or a larger one."""
    decision = kept(study)
    return decision["reason"] if decision is not None and decision["n_trials"] >= n_trials else None
