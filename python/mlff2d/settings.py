"""Settings dataclasses: the single source of every default, checked by value, turned into CLI options.

Each stage's settings are a dataclass deriving from :class:`Settings`, each field declared with
:func:`setting` (default, help text, unit, bounds). From that one declaration:

- :func:`cli_options` generates the click options (and arguments) of the stage's command, with the
  dataclass default, so the CLI and the recipes of ``mlff2d run`` can never disagree;
- :meth:`Settings.from_mapping` builds the settings from a YAML section, rejecting unknown keys;
- ``__post_init__`` checks every value against its type and bounds (``temperature: "300K"`` and
  ``temperature: -5`` are errors naming the key), whether the settings come from the CLI, a recipe or
  Python;
- :meth:`Settings.to_argv` writes the ``mlff2d`` arguments that reproduce them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from mlff2d.errors import ConfigError

S = TypeVar("S", bound="Settings")

_MISSING = dataclasses.MISSING


def setting(
    default: Any = _MISSING,
    help: str = "",  # noqa: A002 (the click word)
    *,
    unit: str | None = None,
    short: str | None = None,
    cli: str | None = None,
    argument: bool = False,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    cli_hidden: bool = False,
) -> Any:
    """Declare one settings field.

    Parameters
    ----------
    default
        The default value (lists are copied per instance). Omit for a required field.
    help
        One-line help text of the CLI option (the unit is appended).
    unit
        Unit of the value (``"K"``, ``"fs"``, ``"Å"``, ``"THz"``), shown in help and errors.
    short
        A short CLI flag (``"-T"``).
    cli
        The CLI option name if it differs from the field name (without ``--``).
    argument
        A positional CLI argument instead of an option.
    ge, gt, le
        Bounds: value ≥ ``ge``, > ``gt``, ≤ ``le`` (also for every item of a tuple or list).
    cli_hidden
        Not offered as a CLI option (recipe or Python only).
    """
    meta = {
        "help": help,
        "unit": unit,
        "short": short,
        "cli": cli,
        "argument": argument,
        "ge": ge,
        "gt": gt,
        "le": le,
        "cli_hidden": cli_hidden,
    }
    if isinstance(default, list):
        value = list(default)
        return dataclasses.field(default_factory=lambda: list(value), metadata=meta)
    if isinstance(default, dict):
        mapping = dict(default)
        return dataclasses.field(default_factory=lambda: dict(mapping), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# -- values ---------------------------------------------------------------------------------------


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if tp is Path:
        return "a path"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {len(args)} values" if Ellipsis not in args else "a list"
    if origin is list:
        return "a list"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None)) + " (or null)"
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and return it in canonical form.

    Integers are accepted for floats, strings for paths, lists for tuples; nested dataclasses are
    built from mappings. Anything else that does not match is a :class:`ConfigError` naming
    ``where`` and the expected type.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def bad() -> ConfigError:
        return ConfigError(f"{where}: {value!r} is not {_describe(tp)}", f"give {_describe(tp)}")

    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(a, value, where)
            except ConfigError:
                continue
        raise bad()
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return from_mapping(tp, value, where)
        raise bad()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where}: {value!r} is not a finite number", "give a finite number")
            return float(value)
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if tp is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
        raise bad()
    if origin is Literal:
        if value in args:
            return value
        raise bad()
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad()
        if Ellipsis in args:
            return tuple(coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise bad()
        return tuple(coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad()
        item = args[0] if args else Any
        return [coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        item = args[1] if len(args) == 2 else Any
        return {k: coerce(item, v, f"{where}.{k}") for k, v in value.items()}
    return value


def _check_bounds(meta: typing.Mapping[str, Any], value: Any, where: str) -> None:
    unit = f" {meta['unit']}" if meta.get("unit") else ""
    items = value if isinstance(value, (list, tuple)) else [value]
    for i, v in enumerate(items):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        at = f"{where}[{i}]" if isinstance(value, (list, tuple)) else where
        for key, fails, words in (
            ("ge", lambda b, v=v: v < b, "is below the minimum"),
            ("gt", lambda b, v=v: v <= b, "must be greater than"),
            ("le", lambda b, v=v: v > b, "is above the maximum"),
        ):
            bound = meta.get(key)
            if bound is not None and fails(bound):
                sign = {"ge": "≥", "gt": ">", "le": "≤"}[key]
                raise ConfigError(
                    f"{at}: {v:g}{unit} {words} {bound:g}{unit}", f"use a value {sign} {bound:g}"
                )


def _norm(key: Any) -> str:
    return str(key).replace("-", "_")


def from_mapping(cls: type[Any], data: dict[str, Any] | None, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad values by name.

    Keys may use ``-`` or ``_``. Values are checked by :func:`coerce` (and by the bounds of
    :func:`setting` for :class:`Settings`).

    Parameters
    ----------
    cls
        A dataclass type.
    data
        The mapping read from YAML (``None`` means all defaults).
    where
        Where the mapping came from, used in error messages (e.g. ``"recipe.yaml: md"``).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = _norm(key)
        if name not in fields:
            raise ConfigError(f"{where}: unknown key '{key}'", f"known keys: {', '.join(sorted(fields))}")
        kwargs[name] = coerce(hints[name], value, f"{where}: {key}")
    missing = [n for n, f in fields.items() if n not in kwargs and _required(f)]
    if missing:
        raise ConfigError(f"{where}: missing key '{missing[0]}'", "add it to the mapping")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        prefix = "" if exc.message.startswith(where) else f"{where}: "
        raise ConfigError(prefix + exc.message, exc.hint) from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _required(f: dataclasses.Field) -> bool:
    return f.default is _MISSING and f.default_factory is _MISSING  # type: ignore[misc]


@dataclasses.dataclass
class Settings:
    """Base of every stage's settings: values checked by type and bounds on construction."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce(hints[f.name], getattr(self, f.name), f.name)
            _check_bounds(f.metadata, value, f.name)
            setattr(self, f.name, value)

    @classmethod
    def from_mapping(cls: type[S], data: dict[str, Any] | None, where: str = "config") -> S:
        """Settings from a YAML mapping (see :func:`from_mapping`)."""
        return from_mapping(cls, data, where)

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def to_argv(self) -> list[str]:
        """The ``mlff2d`` arguments that reproduce these settings (options only where not default)."""
        args: list[str] = []
        opts: list[str] = []
        for f in dataclasses.fields(self):
            meta, value = f.metadata, getattr(self, f.name)
            if meta.get("argument"):
                if value is not None:
                    args.append(str(value))
                continue
            if meta.get("cli_hidden") or value == _default_of(f):
                continue
            name = "--" + (meta.get("cli") or f.name.replace("_", "-"))
            if isinstance(value, bool):
                opts.append(name if value else "--no-" + name[2:])
            elif isinstance(value, (list, tuple)):
                opts += [name, *map(_argv_str, value)]
            elif value is None:
                continue
            else:
                opts += [name, _argv_str(value)]
        return args + opts


def _argv_str(v: Any) -> str:
    return (
        repr(v) if isinstance(v, float) and v != int(v) else (str(int(v)) if isinstance(v, float) else str(v))
    )


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return _MISSING


# -- CLI ------------------------------------------------------------------------------------------


def _click_type(tp: Any) -> tuple[Any, int]:
    """Click type and nargs for a field type (``X | None`` as ``X``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _click_type(inner[0])
    if origin is Literal:
        return click.Choice([str(a) for a in args]), 1
    if origin is tuple and Ellipsis not in args:
        return _click_type(args[0])[0], len(args)
    if tp is Path:
        return click.Path(path_type=Path), 1
    if tp in (int, float, str, bool):
        return tp, 1
    raise TypeError(f"no CLI option for type {tp!r}")


def cli_options(cls: type[Settings], exclude: tuple[str, ...] = ()) -> Any:
    """Decorator adding one click option (or argument) per field of ``cls``.

    Defaults come from the dataclass. The command receives the fields as keyword arguments;
    :func:`settings_from_cli` turns them back into ``cls``.
    """
    hints = typing.get_type_hints(cls)

    def decorate(func: Any) -> Any:
        for f in reversed(dataclasses.fields(cls)):
            meta = f.metadata
            if f.name in exclude or meta.get("cli_hidden"):
                continue
            tp, nargs = _click_type(hints[f.name])
            default = _default_of(f)
            if meta.get("argument"):
                kw = {} if default is _MISSING else {"default": default, "required": False}
                func = click.argument(f.name, type=tp, **kw)(func)
                continue
            name = meta.get("cli") or f.name.replace("_", "-")
            unit = f" ({meta['unit']})" if meta.get("unit") else ""
            # a switch that is off by default is a plain flag (--no-label), else --x/--no-x
            flag = tp is bool and default is False
            decls = [f"--{name}/--no-{name}"] if tp is bool and not flag else [f"--{name}"]
            if meta.get("short"):
                decls.insert(0, meta["short"])
            kw = {
                "help": (meta.get("help") or "") + unit,
                "show_default": default is not None and default is not _MISSING,
                "type": None if tp is bool else tp,
                "nargs": nargs,
            }
            if flag:
                kw = {"help": kw["help"], "is_flag": True}
            if default is _MISSING:
                kw["required"] = True
            else:
                kw["default"] = tuple(default) if isinstance(default, list) else default
            func = click.option(*decls, f.name, **kw)(func)
        return func

    return decorate


def settings_from_cli(cls: type[S], kwargs: dict[str, Any], **extra: Any) -> S:
    """Build ``cls`` from the keyword arguments of a command decorated with :func:`cli_options`.

    Keyword arguments that are not fields of ``cls`` are ignored; ``extra`` overrides.
    Errors name the CLI option (``--temperature``), not the field.
    """
    names = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in kwargs.items() if k in names}
    values.update(extra)
    try:
        return cls(**values)
    except ConfigError as exc:
        field_name = exc.message.split(":", 1)[0].split("[", 1)[0]
        f = names.get(field_name)
        if f is None:
            raise
        label = (
            field_name.upper()
            if f.metadata.get("argument")
            else "--" + (f.metadata.get("cli") or field_name.replace("_", "-"))
        )
        raise ConfigError(label + exc.message[len(field_name) :], exc.hint) from None
