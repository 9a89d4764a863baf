"""What a set of changes means to a person: shown or not, undoable or not, and what must stand out.

:func:`describe` turns checkpoint changes into :class:`~ponder.runtime.events.PathChange`
records, the one description every frontend and ``ponder diff`` shows. A cache folder or a
repository's git metadata is one record with a count (an ``npm install`` is one line, not ten
thousand), and its warnings are summed up in it. A repository made, replaced or reconfigured in
the workspace is named with the config keys that make git run programs and the hooks it holds,
read from the file system (confined to the workspace), never through git.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from ponder.runtime.confined_files import ConfinedTree, OutsideWorkspace
from ponder.runtime.events import PathChange
from ponder.runtime.ledger import (
    CACHE_FOLDERS,
    LINKS,
    MODE,
    Change,
    Stat,
    is_git_metadata,
    unstored_reason,
    warning,
)

CONFIG_LIMIT = 1024 * 1024
_SECTION = re.compile(r'^\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]')
_KEY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$")
DANGEROUS_KEYS = (
    "core.fsmonitor", "core.hookspath", "core.pager", "core.editor", "core.sshcommand",
    "core.askpass", "core.gitproxy", "core.worktree", "diff.external", "diff.*.command",
    "diff.*.textconv", "filter.*.clean", "filter.*.smudge", "filter.*.process",
    "merge.*.driver", "credential.helper", "credential.*.helper", "include.path",
    "includeif.*.path", "alias.*", "sequence.editor", "gpg.program", "gpg.*.program",
    "uploadpack.packobjectshook", "pager.*", "protocol.*.allow", "remote.*.uploadpack",
    "remote.*.receivepack", "core.alternaterefscommand", "submodule.*.update",
    "trailer.*.command", "trailer.*.cmd", "interactive.difffilter", "difftool.*.cmd",
    "mergetool.*.cmd", "gpg.ssh.defaultkeycommand", "sendemail.smtpserver",
)  # fmt: skip
"""Settings with which a repository's config makes git run a program of its choosing."""


def dangerous_settings(config: str) -> list[str]:
    """The settings of a git config file that make git run programs (``core.fsmonitor``...)."""
    found: list[str] = []
    section = ""
    for line in config.removeprefix("\ufeff").splitlines():
        header = _SECTION.match(line)
        if header is not None:
            name, subsection = header.group(1).lower(), header.group(2)
            section = f"{name}.{subsection}" if subsection is not None else name
            line = line[header.end() :]  # a setting may follow on the same line
        key = _KEY.match(line)
        if key is None or not section:
            continue
        setting = f"{section}.{key.group(1).lower()}"
        if any(_matches(setting, pattern) for pattern in DANGEROUS_KEYS) and setting not in found:
            found.append(setting)
    return found


def _matches(setting: str, pattern: str) -> bool:
    head, _, tail = pattern.partition(".*.")
    if not tail:
        if pattern.endswith(".*"):
            return setting.startswith(pattern[:-1])
        return setting == pattern
    return (
        setting.startswith(head + ".") and setting.endswith("." + tail) and setting.count(".") >= 2
    )


GroupKind = Literal["repository", "cache", "refused", "ignored", "folder"]
MANY = 50
"""Changes in one plain folder beyond which it is shown as one line (a generated folder)."""


@dataclass
class _Group:
    path: bytes
    kind: GroupKind
    changes: list[Change] = field(default_factory=list)


def _group_root(
    path: bytes,
    ignored: set[bytes],
    ignored_folders: set[bytes],
    facts: Callable[[bytes], Stat | None],
) -> tuple[bytes, GroupKind] | None:
    """The folder a path is shown under as part of a group, and which kind of folder it is:
    a repository's ``.git`` or a bare repository (a folder with a ``HEAD`` and a ``config``:
    git run in it reads them), before all (one inside ``.venv`` is still a repository); a cache
    folder, a name git refuses, an ignored folder; None when it is shown on its own."""
    parts = path.split(b"/")
    if b".git" in parts:
        return b"/".join(parts[: parts.index(b".git") + 1]), "repository"
    for at in range(1, len(parts)):
        folder = b"/".join(parts[:at])
        if facts(folder + b"/HEAD") is not None and facts(folder + b"/config") is not None:
            return folder, "repository"
    for at, part in enumerate(parts[:-1]):
        if part in CACHE_FOLDERS:
            return b"/".join(parts[: at + 1]), "cache"
        if is_git_metadata(part):
            return b"/".join(parts[: at + 1]), "refused"
    if path in ignored:  # (a .gitignore never is: it is always shown)
        for at in range(1, len(parts)):
            if b"/".join(parts[:at]) in ignored_folders:
                return b"/".join(parts[:at]), "ignored"
    return None


NOTES: dict[GroupKind, str] = {
    "repository": "not in the diff: git metadata (undo never touches it)",
    "cache": "not in the diff: a cache folder (its content is not kept)",
    "refused": "not in the diff: a name git cannot store",
    "ignored": "not in the diff: ignored by .gitignore (kept: undo puts it back)",
    "folder": "",
}


def describe(
    changes: Iterable[Change],
    ignored: set[bytes],
    facts: Callable[[bytes], Stat | None],
    tree: ConfinedTree,
    ignored_folders: set[bytes] = frozenset(),  # type: ignore[assignment]
) -> list[PathChange]:
    """Each change as a person should see it; those that must stand out first. A group of
    one path is shown as that path."""
    groups: dict[bytes, _Group] = {}
    for change in changes:
        root, kind = _group_root(change.path, ignored, ignored_folders, facts) or (
            change.path.rpartition(b"/")[0],
            "folder",
        )
        groups.setdefault(root, _Group(root, kind)).changes.append(change)
    everything: list[PathChange] = []
    for group in groups.values():
        if _as_one_line(group):
            everything.append(_many(group, facts, tree, ignored))
        else:
            everything += [_one(change, ignored, facts) for change in group.changes]
    return sorted(everything, key=lambda c: (not c.warning, c.path))


def _as_one_line(group: _Group) -> bool:
    """A repository always; a plain folder with many changes (not the workspace itself);
    another kind of folder with more than one."""
    if group.kind == "repository":
        return True
    if group.kind == "folder":
        return bool(group.path) and len(group.changes) > MANY
    return len(group.changes) > 1


def _name(path: bytes) -> str:
    return os.fsdecode(path)


def _created(change: Change) -> bool:
    return change.before is None


def _one(change: Change, ignored: set[bytes], facts: Callable[[bytes], Stat | None]) -> PathChange:
    listed = change.listed
    undoable = change.before is None or not change.before.listed
    now = facts(change.path)
    note = ""
    if listed:
        reason = unstored_reason(change.path, now) if now is not None else None
        note = f"not in the diff: {reason or 'its content is not kept'}"
    elif change.path in ignored:
        note = "not in the diff: ignored by .gitignore (kept: undo puts it back)"
    return PathChange(
        path=_name(change.path),
        change=change.kind,  # type: ignore[arg-type]
        shown=not listed and change.path not in ignored,
        undoable=undoable,
        note=note,
        warning=_warning(change, facts) or "",
    )


def _many(
    group: _Group, facts: Callable[[bytes], Stat | None], tree: ConfinedTree, ignored: set[bytes]
) -> PathChange:
    kinds = {change.kind for change in group.changes}
    kind = kinds.pop() if len(kinds) == 1 else "modified"
    repository = group.kind == "repository"
    text = _repository_warning(group, tree) if repository else _summed_warnings(group, facts)
    metadata = repository and group.path.rpartition(b"/")[2] == b".git"  # not a bare one
    plain = group.kind == "folder" or (repository and not metadata)
    return PathChange(
        path=_name(group.path) + "/",
        change=kind,  # type: ignore[arg-type]
        shown=plain and not any(c.listed or c.path in ignored for c in group.changes),
        undoable=not metadata
        and all(c.before is None or not c.before.listed for c in group.changes),
        note="" if plain else NOTES[group.kind],
        warning=text,
        count=len(group.changes),
    )


def _summed_warnings(group: _Group, facts: Callable[[bytes], Stat | None]) -> str:
    """Each kind of warning in the group, with the paths it is about (the first three)."""
    paths: dict[str, list[str]] = {}
    for change in group.changes:
        found = _warning(change, facts)
        if found:
            inside = change.path[len(group.path) + 1 :]
            paths.setdefault(found, []).append(_name(inside))
    return "; ".join(
        f"{text}: {', '.join(names[:3])}"
        + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        for text, names in paths.items()
    )


def _warning(change: Change, facts: Callable[[bytes], Stat | None]) -> str | None:
    """:func:`~ponder.runtime.ledger.warning` for a change, from the facts of the path now."""
    now, after = facts(change.path), change.after
    executable = bool(after is not None and (after.executable or (now and now[MODE] & 0o111)))
    linked = bool(now and stat.S_ISREG(now[MODE]) and now[LINKS] > 1)
    return warning(change.path, change.before is None, after is None, executable, linked)


def _repository_warning(group: _Group, tree: ConfinedTree) -> str:
    """What a changed repository's metadata means: made, replaced or removed, and which of its
    settings and hooks would make git on the host run programs."""
    itself = [c for c in group.changes if c.path == group.path]
    root = group.path
    texts: list[str] = []
    if itself:
        change = itself[0]
        what = (
            "created"
            if change.before is None
            else "removed"
            if change.after is None
            else "replaced"
        )
        texts.append(f"a git repository was {what} here")
    hooks = sorted(
        _name(c.path.rsplit(b"/", 1)[-1])
        for c in group.changes
        if c.after is not None
        and c.path.startswith(root + b"/hooks/")
        and not c.path.endswith(b".sample")
    )
    if hooks:
        texts.append("hooks: " + ", ".join(hooks[:5]) + (" ..." if len(hooks) > 5 else ""))
    configs = (root + b"/config", root + b"/config.worktree")
    config_changed = any(c.path in configs and c.after is not None for c in group.changes)
    if itself or config_changed:
        settings: list[str] = []
        for config in configs:
            text = _read_config(tree, config)
            if len(text) > CONFIG_LIMIT:
                texts.append(f"{_name(config)} is over {CONFIG_LIMIT // 1024**2} MiB: not all read")
            settings += dangerous_settings(text[:CONFIG_LIMIT])
        if settings:
            texts.append("its config sets " + ", ".join(dict.fromkeys(settings)))
    if not texts:
        return "a repository's git metadata changed: look before you use git here"
    return "; ".join(texts) + ": git on your machine runs these, look before you use git here"


def _read_config(tree: ConfinedTree, path: bytes) -> str:
    try:
        data = tree.read_file(path, CONFIG_LIMIT, metadata=True)
    except (OSError, OutsideWorkspace):
        return ""
    return (data or b"").decode("utf-8", errors="replace")
