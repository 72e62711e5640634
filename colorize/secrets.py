"""Passwords in URLs (a tracking server's, an Optuna storage's): masked in everything the project
prints or writes, and kept out of what Hydra itself writes for a run or a sweep.

A password typed on the command line reaches Hydra's saved config and overrides (`.hydra/`), and the
launcher's log of every job of a sweep. `hide` moves it, before Hydra writes anything, into an
environment variable of this process, which the jobs it launches inherit (joblib's processes,
the sweeper's workers, SLURM jobs: sbatch exports the environment), and leaves an `${oc.env:...}`
interpolation in its place: the job resolves it, and nothing written shows it.
"""

import os
import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

# //user:password@ in a URL; the user may be empty (postgresql://:pw@host/db).
PASSWORD = re.compile(r"(//[^:/@\s]*:)([^@\s]+)@")
VARIABLE = "COLORIZE_PASSWORD_{}"  # the environment variables `hide` moves passwords into


def mask(text: str) -> str:
    return PASSWORD.sub(r"\1***@", text)


def masked(value: Any) -> Any:
    """A plain container (a resolved config) with every password in its strings masked."""
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(item) for item in value)
    return mask(value) if isinstance(value, str) else value


def hide(config: DictConfig) -> None:
    """Every password in the config's own strings (values, Hydra's record of the overrides), not
    resolved, becomes an interpolation of an environment variable holding it."""
    with read_write(config), open_dict(config):
        _hide(config)


def _hide(node: DictConfig | ListConfig) -> None:
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)):
            if not child._is_none() and not child._is_missing() and not child._is_interpolation():
                _hide(child)
            continue
        raw = child._value() if child is not None else None
        if isinstance(raw, str):
            hidden = PASSWORD.sub(_interpolated, raw)
            if hidden != raw:
                node[key] = hidden


def _interpolated(found: re.Match) -> str:
    user, password = found.groups()
    return found.group(0) if "${" in password else f"{user}${{oc.env:{variable_for(password)}}}@"


def variable_for(password: str) -> str:
    """The environment variable holding `password`: the one that holds it already, or the next free one."""
    index = 1
    while os.environ.get(VARIABLE.format(index)) not in (None, password):
        index += 1
    os.environ[VARIABLE.format(index)] = password
    return VARIABLE.format(index)


def resolved(config: DictConfig) -> dict:
    """The task's config resolved (the Hydra node left out) as a plain dict, passwords masked: what
    runs record as params, in config.yaml and in checkpoints."""
    task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    plain = OmegaConf.to_container(task, resolve=True, enum_to_str=True, throw_on_missing=False)
    return masked(plain)
