"""The search space: hydra-optuna-sweeper's override syntax read into Optuna distributions, the
grid sampler's values, the points checked before the first trial, and values written back as overrides."""

import re
from typing import Any, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.hydra_optuna_async_sweeper._errors import SweeperError

UNQUOTED = re.compile(r"[\w./:@+\-%]*")  # values Hydra's override grammar reads without quotes


def distribution(override: Override) -> Optional[BaseDistribution]:
    """hydra-optuna-sweeper's syntax: choice(...), range(...), interval(...), int(interval(...)),
    tag(log, ...), shuffle(range(...)) (a choice); None for a plain value."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        # As hydra-optuna-sweeper reads it, unlike Hydra's own range: start to stop inclusive in
        # steps of step (Optuna lowers a stop the steps miss to the last value reached); float if
        # any of the three is.
        start, stop, step = value.start, value.stop, value.step
        if stop < start or step <= 0:
            raise SweeperError(f"{override.input_line}: an empty range (start to stop, a positive step)")
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(float(start), float(stop), step=float(step))
        return IntDistribution(int(start), int(stop), step=int(step))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise SweeperError(f"{override.input_line}: the Optuna sweeper cannot sample this")


def parse(
    params: dict, arguments: list[str], parser: OverridesParser
) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """The sweep's params, then the command line (later wins): the space searched, and the fixed
    overrides every trial gets."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in parser.parse_overrides([f"{key}={value}" for key, value in params.items()] + list(arguments)):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        found = distribution(override)
        if found is None:
            fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
        else:
            space[key] = found
    return space, fixed


def create_optuna_distribution_from_override(override: Override) -> BaseDistribution | str:
    """hydra-optuna-sweeper's function of this name: the distribution, or a plain value as its string."""
    found = distribution(override)
    return override.get_value_element_as_str() if found is None else found


def create_params_from_overrides(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str], list[str]]:
    """hydra-optuna-sweeper's function of this name: the space, the plain values, and the deletions (~key)."""
    space, fixed = parse({}, arguments, OverridesParser.create())
    deletions = [line for line in fixed.values() if line.startswith("~")]
    plain = {key: line.partition("=")[2] for key, line in fixed.items() if not line.startswith("~")}
    return space, plain, deletions


def grid_values(key: str, dist: BaseDistribution) -> list:
    """Every value of a choice; of a stepped range, the steps from low up to high, high left out, as
    hydra-optuna-sweeper builds its grid (other samplers draw high too: see `distribution`)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None and not dist.log:
        count = int((dist.high - dist.low) // dist.step)
        return [dist.low + i * dist.step for i in range(count)]
    raise SweeperError(f"{key}: the grid sampler needs choice(...) or range(...), not {dist}")


def enqueued(points: list[Any], space: dict[str, BaseDistribution]) -> list[dict[str, Any]]:
    """hydra.sweeper.enqueue's points, checked against the space (a param that is not searched, or a
    value outside its range or choices, is one line) and typed as the space's (an int for an int param)."""
    checked = []
    for index, point in enumerate(points):
        if not isinstance(point, dict):
            raise SweeperError(
                f"hydra.sweeper.enqueue[{index}]={point!r}: give a dict of params, e.g. {{optimizer.lr: 1e-3}}"
            )
        typed = {}
        for key, value in point.items():
            if key not in space:
                raise SweeperError(
                    f"hydra.sweeper.enqueue[{index}]: {key} is not searched (the space: {', '.join(space)})"
                )
            dist = space[key]
            if isinstance(dist, FloatDistribution) and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            try:
                inside = dist._contains(dist.to_internal_repr(value))
            except (ValueError, TypeError):
                inside = False
            if not inside or (isinstance(dist, IntDistribution) and not isinstance(value, int)):
                raise SweeperError(
                    f"hydra.sweeper.enqueue[{index}]: {key}={value!r} is outside its search space {dist}"
                )
            typed[key] = value
        checked.append(typed)
    return checked


def edge_points(space: dict[str, BaseDistribution]) -> list[dict[str, Any]]:
    """Points that together hold every bound of every numeric dimension and every choice: the first
    takes all lows and first choices, the others all highs and the following choices. Checking them
    finds a value that no trial could use before any trial starts (not every combination)."""
    count = max([2] + [len(d.choices) for d in space.values() if isinstance(d, CategoricalDistribution)])
    points = []
    for i in range(count):
        point = {}
        for key, dist in space.items():
            if isinstance(dist, CategoricalDistribution):
                point[key] = dist.choices[min(i, len(dist.choices) - 1)]
            else:
                point[key] = dist.low if i == 0 else dist.high
        points.append(point)
    return points


def quote(value: Any) -> str:
    text = str(value)
    if isinstance(value, str) and not UNQUOTED.fullmatch(text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def overrides(point: dict[str, Any]) -> list[str]:
    return [f"{key}={quote(value)}" for key, value in point.items()]
