"""One parser for every recipe: YAML file, then `--field value` flags, into a config dataclass.

    cfg = load_config(DPOConfig, "recipes/dpo.yaml", {"beta": "0.2"})

A field whose type is itself a config dataclass is a *section* (the loop's `policy:`, `dpo:`, ...): a
mapping in the YAML and dotted flags on the command line (`--dpo.beta 0.2`), with errors naming the
dotted key. Unknown keys (in the YAML or on the command line) raise `ConfigError` naming the key and
the closest valid keys; a value of the wrong type names the field, the value and what is allowed. Range checks
live in each config's `__post_init__`. The module imports nothing heavy: `align --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Union

from foundation.errors import ConfigError

__all__ = ["load_config", "parse_flags", "config_help", "coerce", "check", "section", "dotted"]


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
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a mapping"}.get(tp, getattr(tp, "__name__", str(tp)))


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


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_paths(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every settable key of `cls` with its type; a section's fields as `section.field`."""
    out: dict[str, Any] = {}
    for name, tp in _hints(cls).items():
        f = cls.__dataclass_fields__.get(name)
        if f is None or not f.init:
            continue
        if _is_section(tp):
            out.update(_field_paths(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out


def parse_flags(tokens: list[str], cls: type) -> dict[str, str | bool]:
    """`["--beta", "0.2", "--gradient_checkpointing", "--lr=1e-5"]` -> {"beta": "0.2", ...}.

    A flag of a bool field may stand alone (it means true). Dashes and underscores are equivalent.
    A field of a section is a dotted flag: `--policy.quantization 4bit`.
    """
    hints = _field_paths(cls)
    valid = list(hints)
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


def _read_recipe(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist; pass an existing YAML file to --config.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of `key: value`, got {type(data).__name__}.")
    return data


def dotted(error: ConfigError, section_of) -> ConfigError:
    """The same error with its field named by its section: "`beta` must ..." -> "`dpo.beta` must ...".
    `section_of(field)` gives the section, or None to leave the field as it is."""
    def name(match) -> str:
        section = section_of(match.group(1))
        return f"`{section}.{match.group(1)}`" if section else match.group(0)

    return ConfigError(re.sub(r"^`(\w+)`", name, str(error)))


def _build(cls: type, values: dict[str, Any], prefix: str):
    """`cls(**values)`, with a section's validation errors naming the dotted key (`dpo.beta`)."""
    try:
        return cls(**values)
    except ConfigError as e:
        if not prefix:
            raise
        raise dotted(e, lambda field: prefix.rstrip(".")) from None


def _fill(cls: type, layers: list[tuple[dict, str]], prefix: str = ""):
    """Fill `cls` from `layers` of (mapping, origin), later layers winning; sections recursively."""
    hints = _hints(cls)
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    values: dict[str, Any] = {}
    sections: dict[str, list[tuple[dict, str]]] = {}
    for mapping, origin in layers:
        for key, value in mapping.items():
            key = str(key)
            if key not in valid:
                where = f"command line `--{prefix}{key}`" if origin == "command line" else origin
                raise _unknown_key(prefix + key, [prefix + v for v in valid], where)
            if _is_section(hints[key]):
                if not isinstance(value, dict):
                    raise ConfigError(f"`{prefix}{key}` is a section: give it as a mapping of `field: value` "
                                      f"({origin}), got {value!r}.")
                sections.setdefault(key, []).append((value, origin))
            else:
                where = f"--{prefix}{key}" if origin == "command line" else origin
                values[key] = coerce(prefix + key, hints[key], value, where)
    for key, section_layers in sections.items():
        values[key] = _fill(hints[key], section_layers, f"{prefix}{key}.")
    return _build(cls, values, prefix)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"policy.quantization": "4bit"} -> {"policy": {"quantization": "4bit"}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def load_config(cls: type, config_path: str | Path | None = None, overrides: dict[str, Any] | None = None):
    """Fill `cls` from a YAML recipe (optional), then from `overrides` (command-line flags win).
    A field whose type is a dataclass is a section: a mapping in the YAML, dotted keys as flags."""
    layers = []
    if config_path is not None:
        path = Path(config_path)
        layers.append((_read_recipe(path), f"in {path}"))
    if overrides:
        layers.append((_nest(overrides), "command line"))
    return _fill(cls, layers)


def config_help(cls: type, prefix: str = "") -> str:
    """One line per field: name, type, default and the `help` metadata; a section's fields dotted."""
    hints = _hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if _is_section(hints[f.name]):
            doc = (hints[f.name].__doc__ or "").strip().splitlines()[0]
            lines.append(f"\n  {f.name}: (section) {f.metadata.get('help', doc)}\n"
                         + config_help(hints[f.name], f"{prefix}{f.name}."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        lines.append(f"  --{prefix}{f.name} ({_describe(hints[f.name])}, default: {default})\n"
                     f"      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def check(condition: bool, name: str, value: Any, fix: str) -> None:
    """Raise a `ConfigError` unless `condition`: "`beta` must be non-negative, got -0.1."."""
    if not condition:
        raise ConfigError(f"`{name}` {fix}, got {value!r}.")


def section(cls: type, name: str, *, exclude: Iterable[str] = (), defaults: dict[str, Any] | None = None,
            doc: str = "") -> type:
    """A dataclass holding `cls`'s fields less `exclude`, some with other `defaults`: one stage's section
    of a composite config. The loop's `dpo:` is DPOConfig's fields less the model (its `policy:`
    section) and what the loop sets itself (data, output folder, seed). `section.target` is `cls`; the
    section's values are checked by building `cls` from them (`cls.__post_init__`)."""
    defaults = defaults or {}
    hints = _hints(cls)
    unknown = set(defaults) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"section {name}: {sorted(unknown)} are not fields of {cls.__name__}")
    kept = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in exclude:
            continue
        if f.name in defaults:
            value = defaults[f.name]
            spec = dataclasses.field(default_factory=lambda v=value: list(v), metadata=f.metadata) \
                if isinstance(value, list) else dataclasses.field(default=value, metadata=f.metadata)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            spec = dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)  # type: ignore[misc]
        else:
            spec = dataclasses.field(default=f.default, metadata=f.metadata)
        kept.append((f.name, hints[f.name], spec))
    return dataclasses.make_dataclass(name, kept, namespace={"__doc__": doc, "target": cls})
