"""One parser for every recipe: YAML file, then `--field value` flags, into a config dataclass.

    cfg = load_config(DPOConfig, "recipes/dpo.yaml", {"beta": "0.2"})

Unknown keys (in the YAML or on the command line) raise `ConfigError` naming the key and the closest
valid keys; a value of the wrong type names the field, the value and what is allowed. Range checks
live in each config's `__post_init__`. The module imports nothing heavy: `align --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from reward.errors import ConfigError

__all__ = ["load_config", "parse_flags", "config_help", "coerce"]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown_key(key: str, valid: list[str], origin: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
    return ConfigError(f"unknown key `{key}` ({origin}).{hint} Valid keys: {', '.join(sorted(valid))}.")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def coerce(name: str, tp: Any, value: Any, origin: str) -> Any:
    """Convert `value` (a YAML value, or a string from the command line) to type `tp`, or raise."""
    from_cli = origin.startswith("--")

    def fail() -> ConfigError:
        return ConfigError(f"`{name}` must be {_describe(tp)}, got {value!r} ({origin}).")

    args = typing.get_args(tp)
    kind = typing.get_origin(tp)
    if kind in (Union, types.UnionType):
        if value is None or (from_cli and isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for a in (a for a in args if a is not type(None)):
            try:
                return coerce(name, a, value, origin)
            except ConfigError:
                continue
        raise fail()
    if kind is Literal:
        for a in args:
            if value == a or (from_cli and isinstance(value, str) and value == str(a)):
                return a
        raise fail()
    if kind is list:
        if from_cli and isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise fail()
        return [coerce(name, args[0], v.strip() if isinstance(v, str) else v, origin) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail()
    if tp is dict:
        if isinstance(value, dict):
            return value
        raise fail()
    return value


def parse_flags(tokens: list[str], cls: type) -> dict[str, str | bool]:
    """`["--beta", "0.2", "--gradient_checkpointing", "--lr=1e-5"]` -> {"beta": "0.2", ...}.

    A flag of a bool field may stand alone (it means true). Dashes and underscores are equivalent.
    """
    hints = _hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise ConfigError(f"unexpected argument {tok!r}: options are `--field value`. "
                              f"Valid fields: {', '.join(sorted(valid))}.")
        key, eq, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if key not in hints:
            raise _unknown_key(key, valid, f"command line `{tok}`")
        if eq:
            out[key] = val
            i += 1
        elif hints[key] is bool and (i + 1 == len(tokens) or tokens[i + 1].startswith("--")):
            out[key] = True
            i += 1
        elif i + 1 < len(tokens):
            out[key] = tokens[i + 1]
            i += 2
        else:
            raise ConfigError(f"`--{key}` needs a value ({_describe(hints[key])}).")
    return out


def load_config(cls: type, config_path: str | Path | None = None, overrides: dict[str, Any] | None = None):
    """Fill `cls` from a YAML recipe (optional), then from `overrides` (command-line flags win)."""
    hints = _hints(cls)
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    values: dict[str, Any] = {}
    if config_path is not None:
        import yaml

        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"recipe {path} does not exist; pass an existing YAML file to --config.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"recipe {path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"recipe {path} must be a mapping of `key: value`, got {type(data).__name__}.")
        for key, value in data.items():
            if key not in valid:
                raise _unknown_key(str(key), valid, f"in {path}")
            values[key] = coerce(key, hints[key], value, f"in {path}")
    for key, value in (overrides or {}).items():
        if key not in valid:
            raise _unknown_key(key, valid, f"command line `--{key}`")
        values[key] = coerce(key, hints[key], value, f"--{key}")
    return cls(**values)


def config_help(cls: type) -> str:
    """One line per field: name, type, default and the `help` metadata."""
    hints = _hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        lines.append(f"  --{f.name} ({_describe(hints[f.name])}, default: {default})\n"
                     f"      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def check(condition: bool, name: str, value: Any, fix: str) -> None:
    """Raise a `ConfigError` unless `condition`: "`beta` must be non-negative, got -0.1."."""
    if not condition:
        raise ConfigError(f"`{name}` {fix}, got {value!r}.")
