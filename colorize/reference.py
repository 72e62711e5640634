"""Every config key with its default and meaning, read from the schemas' own comments in
colorize/config.py: the one source of both `--help` and the docs site's configuration reference."""

import ast
import dataclasses
import inspect
import io
import tokenize
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import MISSING

from colorize import config

CONF = Path(__file__).resolve().parents[1] / "conf"
# Each command's schema, and per group option the schema its keys come from (shown once per group:
# an option's own keys, then those it shares with the group's base).
COMMANDS = {"train": config.TrainConfig, "evaluate": config.EvaluateConfig, "colorize": config.ColorizeConfig}
OPTIONS = {
    "model": (
        config.ModelConfig,
        {"convnet": config.ConvNetConfig, "convae": config.ConvAEConfig, "unet": config.UNetConfig},
    ),
    "loss": (
        config.LossConfig,
        {"smooth_l1": config.SmoothL1Config, "log_mse": config.LogMSEConfig, "bins": config.BinsLossConfig},
    ),
    "optimizer": (config.OptimizerConfig, {"sgd": config.SGDConfig}),
}

# Schemas made from another (evaluate's `data`: DataConfig's keys, each null by default) share its comments.
OVERRIDES = {"DataOverrides": "DataConfig"}


class Key(NamedTuple):
    name: str  # dotted, e.g. data.image_size
    default: str
    meaning: str


@cache
def comments() -> dict[tuple[str, str], str]:
    """(class, field) -> the comment on the field's line and any comment lines right above it."""
    source = inspect.getsource(config)
    lines = source.splitlines()
    trailing = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and lines[token.start[0] - 1].lstrip() != token.string:
            trailing[token.start[0]] = token.string.removeprefix("#").strip()
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    above, line = [], item.lineno - 1
                    while line > 0 and lines[line - 1].lstrip().startswith("#"):
                        above.insert(0, lines[line - 1].strip().removeprefix("#").strip())
                        line -= 1
                    inline = [trailing[n] for n in range(item.lineno, item.end_lineno + 1) if n in trailing]
                    found[(node.name, item.target.id)] = " ".join([*above, *inline]).strip()
    return found


def default(field: dataclasses.Field) -> str:
    if field.default_factory is not dataclasses.MISSING:
        value: Any = field.default_factory()
        if dataclasses.is_dataclass(value):
            return ""
    else:
        value = field.default
    if value is MISSING:
        return "??? (required)"
    if isinstance(value, Enum):
        return f"{value.value} ({', '.join(member.value for member in type(value))})"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def keys(schema: type, prefix: str = "", skip: frozenset[str] = frozenset()) -> list[Key]:
    """The schema's keys, nested dataclasses flattened; group keys (typed Any) and `_..._` keys left out."""
    found = []
    for field in dataclasses.fields(schema):
        if field.name.startswith("_") or field.name in skip:
            continue
        owner = next(cls.__name__ for cls in schema.__mro__ if field.name in getattr(cls, "__annotations__", {}))
        name = prefix + field.name
        nested = field.default_factory() if field.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(nested):
            found += keys(type(nested), f"{name}.")
        elif field.type is not Any:
            meaning = comments().get((owner, field.name)) or comments().get(
                (OVERRIDES.get(owner, owner), field.name), ""
            )
            found.append(Key(name, "null (the checkpoint's)" if owner in OVERRIDES else default(field), meaning))
    return found


def group_keys(group: str) -> list[tuple[str, list[Key]]]:
    """(which options, keys) of a group: the base schema's keys, then each option's own keys and
    defaults (those it adds, or whose default it changes)."""
    base, options = OPTIONS[group]
    shared = {key.name: key for key in keys(base, f"{group}.")}
    found = [(f"every {group}", list(shared.values()))] if shared else []
    for name, option in options.items():
        own = [
            key
            for key in keys(option, f"{group}.")
            if shared.get(key.name, key)[:2] != key[:2] or key.name not in shared
        ]
        if own:
            found.append((name, own))
    return found


def groups() -> dict[str, list[str]]:
    """The groups a user chooses from, with their options: conf/<group>/*.yaml (never schema/*)."""
    return {path.name: sorted(p.stem for p in path.glob("*.yaml")) for path in sorted(CONF.iterdir()) if path.is_dir()}


def help_text(command: str) -> str:
    """`python -m colorize.<command> --help`."""
    lines = [f"colorize.{command}: override any key as key=value, choose a group's option as group=option.", ""]
    chosen = {group: options for group, options in groups().items() if command == "train" or group == "data"}
    if command != "colorize":
        lines += (
            ["== Groups (group=option) =="]
            + [f"{group}: {', '.join(options)}" for group, options in chosen.items()]
            + [""]
        )
    lines.append("== Keys (key=value; default, then meaning) ==")
    width = 30
    for key in keys(COMMANDS[command]):
        lines.append(f"{key.name:<{width}} {key.default}" + (f"  # {key.meaning}" if key.meaning else ""))
    if command == "train":
        for group in OPTIONS:
            for users, found in group_keys(group):
                lines.append(f"-- {group} ({users}) --")
                lines += [
                    f"{key.name:<{width}} {key.default}" + (f"  # {key.meaning}" if key.meaning else "")
                    for key in found
                ]
    lines += [
        "",
        "Hydra's own flags: --hydra-help. The whole composed config: --cfg job. Sweeps: -m sweep=<name> (see docs/sweeps).",
    ]
    return "\n".join(lines).replace("$", "$$")  # Hydra fills the help text in with string.Template


def markdown() -> str:
    """The docs site's configuration reference."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the schemas in `colorize/config.py` (the same text as `--help`).",
        "",
    ]

    def table(found: list[Key]) -> list[str]:
        rows = ["| key | default | meaning |", "| --- | --- | --- |"]
        return rows + [f"| `{k.name}` | `{k.default}` | {k.meaning.replace('|', '/')} |" for k in found] + [""]

    out += ["## Groups", "", "| group | options |", "| --- | --- |"]
    out += [f"| `{group}` | {', '.join(f'`{o}`' for o in options)} |" for group, options in groups().items()] + [""]
    for command, schema in COMMANDS.items():
        out += [f"## `python -m colorize.{command}`", ""] + table(keys(schema))
    for group in OPTIONS:
        for users, found in group_keys(group):
            out += [f"### `{group}` keys: {users}", ""] + table(found)
    return "\n".join(out)
