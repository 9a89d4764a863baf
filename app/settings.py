"""Settings are declared once, in the dataclass of the layer that uses them; the rest is made here.

A field of a layer's dataclass is a setting when its metadata holds ``"setting"`` (what it may
be, and which flags set it); its name and default are the field's, its help is the field's own
docstring::

    max_steps: int = field(default=300, metadata={"setting": {"ge": 1, "flags": ["--max-steps"]}})
    \"\"\"Model steps (one generation and its tool calls) in one task.\"\"\"

Keys of ``"setting"``: ``ge``, ``gt``, ``le`` (bounds), ``unit`` (``"bytes"``: a size written
as :func:`~ponder.app.sizes.parse_size` reads it; others only name the unit in ``--help``),
``flags`` (the command-line spellings; none: only the config file sets it), ``choices`` (a
flag's words and the values they stand for, as llama.cpp's ``-fa on|off``), ``metavar``.

From those declarations come the tables of the config file (:func:`table`: pydantic models that
refuse unknown keys and check bounds), the command-line flags and their ``--help`` with the
default (:func:`add_flags`), what the flags set (:func:`given_flags`) and the dataclass a layer
gets back (:func:`build`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import sys
import types
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from ponder.app.sizes import format_size, parse_size

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared setting, as read from its dataclass."""

    name: str
    annotation: Any
    default: Any
    help: str
    spec: Mapping[str, Any]

    @property
    def bytes(self) -> bool:
        return self.spec.get("unit") == "bytes"

    def shown_default(self) -> str:
        if self.default is None:
            return "unset"
        if self.bytes:
            return format_size(self.default)
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, int | float):
            return f"{self.default:,}" if self.default >= 10_000 else f"{self.default:g}"
        return str(self.default)


@cache
def _classes_in(module: str) -> dict[str, ast.ClassDef]:
    """The classes a module's source defines, by name (one parse per module: asking
    :func:`inspect.getsource` class by class tokenizes the file again each time)."""
    try:
        source = Path(sys.modules[module].__file__ or "").read_text(encoding="utf-8")
    except (KeyError, OSError, ValueError):  # ValueError: not text (a .pyc, no source)
        return {}
    return {
        node.name: node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)
    }


def _docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of ``cls`` (how the code documents its fields)."""
    node = _classes_in(cls.__module__).get(cls.__name__)
    found = {}
    for field_node, after in itertools.pairwise(node.body if node else []):
        if (
            isinstance(field_node, ast.AnnAssign)
            and isinstance(field_node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[field_node.target.id] = " ".join(after.value.value.split())
    return found


def settings_of(cls: type) -> list[Setting]:
    """The settings ``cls`` declares, in the order of its fields."""
    hints = get_type_hints(cls)
    helps = _docstrings(cls)
    found = []
    for item in dataclasses.fields(cls):
        spec = item.metadata.get("setting")
        if spec is None:
            continue
        if item.default is not dataclasses.MISSING:
            default = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            raise TypeError(f"setting {cls.__name__}.{item.name} has no default")
        help_text = helps.get(item.name)
        if not help_text:
            raise TypeError(f"setting {cls.__name__}.{item.name} has no docstring")
        found.append(Setting(item.name, hints[item.name], default, help_text, spec))
    return found


def _size(value: object) -> object:
    return parse_size(str(value)) if isinstance(value, str | int) else value


def table(name: str, *classes: type, **more: type[BaseModel] | tuple[Any, Any]) -> type[BaseModel]:
    """The config file's table of the settings ``classes`` declare; ``more`` adds tables
    (models made by this function) and fields of the app's own (``(annotation, default)``)."""
    fields: dict[str, Any] = {}
    for key, extra in more.items():
        if isinstance(extra, tuple):
            annotation, empty = extra
            fields[key] = (annotation, Field(default_factory=lambda empty=empty: type(empty)()))
        else:
            fields[key] = (extra, Field(default_factory=extra))
    for cls in classes:
        for setting in settings_of(cls):
            annotation = setting.annotation
            if setting.bytes:
                annotation = Annotated[annotation, BeforeValidator(_size)]
            bounds = {key: setting.spec[key] for key in ("ge", "gt", "le") if key in setting.spec}
            if get_origin(setting.annotation) is tuple:
                default: Any = Field(default=setting.default, description=setting.help, **bounds)
            else:
                default = Field(setting.default, description=setting.help, **bounds)
            fields[setting.name] = (annotation, default)
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    model.__doc__ = f"The settings of {', '.join(cls.__name__ for cls in classes)}."
    return model


def build(cls: type[T], values: BaseModel, **others: Any) -> T:
    """``cls`` with the settings ``values`` holds (the rest its defaults, or ``others``)."""
    chosen = {setting.name: getattr(values, setting.name) for setting in settings_of(cls)}
    return cls(**chosen, **others)


def _flag_type(setting: Setting) -> Any:
    """What argparse converts a flag's word with (sizes stay words: the config reads them)."""
    kinds = [a for a in get_args(setting.annotation) if a is not type(None)]
    base = kinds[0] if get_origin(setting.annotation) in (Union, types.UnionType) else None
    base = base or setting.annotation
    if get_origin(base) is tuple:
        base = get_args(base)[0]
    return None if setting.bytes or base is str else base


def add_flags(parser: argparse.ArgumentParser, title: str, where: str, *classes: type) -> None:
    """The flags of the settings ``classes`` declare, in a group of ``parser``'s help; each sets
    the config key ``where.NAME`` (``where`` empty: a top-level key)."""
    group = parser.add_argument_group(title)
    for cls in classes:
        for setting in settings_of(cls):
            spellings = setting.spec.get("flags")
            if not spellings:
                continue
            dest = f"{where}.{setting.name}" if where else setting.name
            text = setting.help.rstrip(".")
            unset = setting.default is None or setting.default == ()
            key = f"[{where}] {setting.name}" if where else setting.name
            if unset and "unset" in text:
                text += f" (config: {key})"
            else:
                shown = "none" if setting.default == () else setting.shown_default()
                text += f" (default: {shown}; config: {key})"
            options: dict[str, Any] = {"dest": dest, "help": text}
            choices = setting.spec.get("choices")
            if setting.annotation is bool:
                options.update(action=argparse.BooleanOptionalAction, default=None)
            elif choices:
                options.update(choices=list(choices))
            elif get_origin(setting.annotation) is Literal:
                options.update(choices=list(get_args(setting.annotation)))
            elif get_origin(setting.annotation) is tuple:
                options.update(action="append", type=_flag_type(setting))
            else:
                options.update(type=_flag_type(setting))
            kind = _flag_type(setting)
            if "metavar" in setting.spec:
                options["metavar"] = setting.spec["metavar"]
            elif kind in (int, float) and "action" not in options:
                options["metavar"] = "N" if kind is int else "X"
            elif "choices" not in options and "action" not in options:
                options["metavar"] = setting.name.upper()
            group.add_argument(*spellings, **options)


def given_flags(
    args: argparse.Namespace, groups: list[tuple[str, str, tuple[type, ...]]]
) -> dict[str, Any]:
    """What the flags of ``groups`` (as :func:`add_flags` made them) set, as the config's
    nested tables; a flag not given is left out."""
    given: dict[str, Any] = {}
    for _, where, classes in groups:
        for cls in classes:
            for setting in settings_of(cls):
                dest = f"{where}.{setting.name}" if where else setting.name
                value = getattr(args, dest, None)
                if value is None:
                    continue
                words = setting.spec.get("choices")
                (given.setdefault(where, {}) if where else given)[setting.name] = (
                    words[value] if words else value
                )
    return given
