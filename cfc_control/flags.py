"""Command-line flags generated from dataclasses, so a setting's type, default and help live once.

    @dataclass(frozen=True)
    class Config:
        seed: int = setting(0, "seeds everything")
        timings: Tuple[str, ...] = setting(("Fixed", "Jitter"), "timings to evaluate", flag="--eval-timings")

    parser = argparse.ArgumentParser()
    add_flags(parser, Config)                     # --seed, --eval-timings (nested dataclasses: groups)
    given = vars(parser.parse_args(argv))         # only the flags the user gave, by dotted path
    config = build(Config, given)                 # the defaults, updated by what was given

The model is CleanRL's (a dataclass per script, its fields the flags); no such library is a
dependency here and this needs only a hundred lines, so it is written out. Types understood:
``int``, ``float``, ``str``, ``bool`` (a flag that flips the default: ``--x`` or ``--no-x``),
``Optional`` of those, ``Tuple[str, ...]`` (comma-separated), ``Dict[str, Any]`` (repeatable
``KEY=VALUE``, the value read as JSON when it parses) and nested dataclasses (an argument group
each). :func:`from_dict` rebuilds a config from its ``asdict`` form (a JSON file), refusing
unknown keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Type, TypeVar

T = TypeVar("T")


def setting(default: Any, help: str, *, flag: Optional[str] = None, choices: Optional[Sequence[Any]] = None,
            metavar: Optional[str] = None, compare: bool = True, algos: Optional[Sequence[str]] = None) -> Any:
    """A dataclass field with its command-line help (and flag name, when not ``--<name>``).
    ``compare=False``: the field does not take part in the config's equality. ``algos``: the
    algorithms the setting applies to, where they are more than its group's."""
    meta = {"help": help, "flag": flag, "choices": choices, "metavar": metavar}
    if algos is not None:
        meta["algos"] = tuple(algos)
    if isinstance(default, (dict, list)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta, compare=compare)
    return dataclasses.field(default=default, metadata=meta, compare=compare)


def group(cls: Type[Any], help: str, *, compare: bool = True, **meta: Any) -> Any:
    """A nested dataclass field: its fields become an argument group titled ``help``."""
    return dataclasses.field(default_factory=cls, metadata={"help": help, **meta}, compare=compare)


def _hints(cls: Type[Any]) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> Tuple[Any, bool]:
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def flag_name(field: dataclasses.Field) -> str:
    """The flag of a field: its ``flag`` metadata or ``--<name>``; a bool that defaults to True
    is switched off by ``--no-<name>``."""
    given = field.metadata.get("flag")
    if given:
        return given
    name = field.name.replace("_", "-")
    return f"--no-{name}" if field.default is True else f"--{name}"


def iter_fields(cls: Type[Any], prefix: str = "") -> Iterator[Tuple[str, dataclasses.Field, Any, Tuple[dataclasses.Field, ...]]]:
    """(dotted path, field, type, enclosing group fields) of every leaf setting of ``cls``."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            for path, leaf, leaf_tp, parents in iter_fields(tp, f"{prefix}{f.name}."):
                yield path, leaf, leaf_tp, (f, *parents)
        else:
            yield f"{prefix}{f.name}", f, tp, ()


def parse_key_values(items: Sequence[str], flag: str) -> Dict[str, Any]:
    """``["units=32", "mode=pure"]`` -> ``{"units": 32, "mode": "pure"}`` (values as JSON when
    they parse, else as text). Raises ValueError naming the flag and the item."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _comma_list(text: str) -> Tuple[str, ...]:
    return tuple(t.strip() for t in str(text).split(",") if t.strip())


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return " ".join(f"{k}={json.dumps(v)}" for k, v in value.items()) or "none"
    return str(value)


def add_flags(parser: argparse.ArgumentParser, cls: Type[Any], *, skip: Sequence[str] = ()) -> None:
    """Add a flag per leaf setting of ``cls`` (nested dataclasses in their own groups). Every flag
    defaults to "not given", so the parsed namespace holds only what the user typed, by dotted path."""
    groups: Dict[str, Any] = {}
    for path, f, tp, parents in iter_fields(cls):
        if path in skip:
            continue
        target: Any = parser
        if parents:
            title = parents[0].metadata.get("help", parents[0].name)
            target = groups.setdefault(title, parser.add_argument_group(title))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = default is not None and not isinstance(default, bool)  # a switch's help says what it does
        help_text = f.metadata.get("help", "") + (f" (default: {_show(default)})" if shown else "")
        if default is True:  # the flag is --no-<name>: say that it switches the setting off
            help_text = f"switch off: {help_text}"
        kw: Dict[str, Any] = {"dest": path, "default": argparse.SUPPRESS, "help": help_text}
        base, _ = _unwrap_optional(tp)
        if base is bool:
            kw["action"] = "store_false" if default is True else "store_true"
        elif typing.get_origin(base) in (dict, Dict) or base is dict:
            kw.update(action="append", metavar=f.metadata.get("metavar") or "KEY=VALUE")
        elif typing.get_origin(base) in (tuple, Tuple):
            kw.update(type=_comma_list, metavar=f.metadata.get("metavar") or "A,B,...")
        else:
            metavar = f.metadata.get("metavar") or (None if f.metadata.get("choices") else f.name.upper())
            kw.update(type=base if base in (int, float) else str, choices=f.metadata.get("choices"), metavar=metavar)
        target.add_argument(flag_name(f), **kw)


def flags_by_path(cls: Type[Any]) -> Dict[str, str]:
    """Dotted path -> flag, for messages about given flags."""
    return {path: flag_name(f) for path, f, _, _ in iter_fields(cls)}


def build(cls: Type[T], given: Mapping[str, Any], base: Optional[T] = None) -> T:
    """``base`` (default: ``cls()``) with the parsed flags ``given`` (dotted path -> value) set.
    Dict settings given as ``KEY=VALUE`` lists are parsed (ValueError names the flag)."""
    config = base if base is not None else cls()
    flags = flags_by_path(cls)
    for path, value in given.items():
        if path not in flags:
            continue
        if isinstance(value, list):
            value = parse_key_values(value, flags[path])
        config = _set(config, path.split("."), value)
    return config


def _set(config: Any, keys: Sequence[str], value: Any) -> Any:
    head, *rest = keys
    if rest:
        value = _set(getattr(config, head), rest, value)
    return dataclasses.replace(config, **{head: value})


def from_dict(cls: Type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Rebuild ``cls`` from its :func:`dataclasses.asdict` form (lists back to tuples, nested
    dicts to dataclasses). Raises ValueError naming an unknown key or a bad value."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    values: Dict[str, Any] = {}
    for key, value in data.items():
        tp, _ = _unwrap_optional(hints[key])
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value, f"{where}.{key}")
        elif typing.get_origin(tp) in (tuple, Tuple) and isinstance(value, list):
            value = tuple(value)
        values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err


def differences(a: Any, b: Any, prefix: str = "") -> list:
    """``["path: A vs B", ...]`` for the compared fields (``compare=True``) where two configs of
    one class differ, nested dataclasses by dotted path."""
    out = []
    for f in dataclasses.fields(a):
        if not f.compare:
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
            out += differences(x, y, f"{prefix}{f.name}.")
        elif x != y:
            out.append((f"{prefix}{f.name}", x, y))
    return out
