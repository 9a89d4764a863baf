"""Themes from TOML files: the ones shipped in ``ponder.themes`` and the user's own."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
from textual.color import ColorParseError
from textual.theme import Theme

_FIELDS = [
    "name",
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "dark",
    "luminosity_spread",
    "text_alpha",
    "variables",
]


class ThemeError(Exception):
    pass


def theme_from_toml(text: str, source: str) -> Theme:
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"{source}: {exc}") from None
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown or "name" not in data or "primary" not in data:
        raise ThemeError(f"{source}: needs name and primary; unknown keys: {unknown}")
    colours = [k for k in _FIELDS[1:12] if k in data and not isinstance(data[k], str)]
    if colours:
        raise ThemeError(f'{source}: {colours[0]} must be a colour in quotes, like "#2e5cbf"')
    try:
        theme = Theme(**data)
        theme.to_color_system().generate()  # what Textual does when the theme is applied
    except (TypeError, ValueError, ColorParseError) as exc:
        raise ThemeError(f"{source}: {exc}") from None
    return theme


def remembered_theme() -> str | None:
    """The theme last chosen with /theme (None when none was, or the note is not a name)."""
    try:
        name = _remembered().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if re.fullmatch(r"[\w.-]{1,64}", name) else None


def remember_theme(name: str) -> None:
    path = _remembered()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name + "\n", encoding="utf-8")
    except OSError:
        pass  # a read-only home: the choice lasts this session


def _remembered() -> Path:
    return platformdirs.user_state_path("ponder") / "theme"


def load_themes(user_dir: Path | None) -> tuple[list[Theme], list[str]]:
    """Shipped themes first, then ``*.toml`` in ``user_dir`` (a user theme can replace one);
    and what was wrong with the user's files that could not be read (they are skipped)."""
    themes = [
        theme_from_toml(entry.read_text(encoding="utf-8"), entry.name)
        for entry in sorted(resources.files("ponder.themes").iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    ]
    problems = []
    if user_dir is not None and user_dir.is_dir():
        for path in sorted(user_dir.glob("*.toml")):
            try:
                themes.append(theme_from_toml(path.read_text(encoding="utf-8"), str(path)))
            except (ThemeError, OSError, UnicodeDecodeError) as error:
                problems.append(f"theme skipped: {error}")
    return themes, problems
