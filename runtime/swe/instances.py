"""SWE-bench task instances and predictions, in SWE-bench's own file formats.

Instances come as JSONL, JSON (a list) or Parquet, or by dataset name from the local Hugging
Face cache (:mod:`ponder.runtime.swe.datasets`); ``FAIL_TO_PASS`` and ``PASS_TO_PASS`` may be
lists or JSON-encoded strings, as in the published datasets. SWE-bench 5's columns ``image``,
``eval_script``, ``log_parser``, ``eval_type`` and ``version`` say how an instance is tested.
Besides those ponder reads ``image_name``/``docker_image`` (older names for ``image``),
``repo_path`` and ``repo_bundle`` (a local repository or git bundle to check out), and
``test_cmd`` (the test command, for instances without an ``eval_script``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSTALL = "pip install 'ponder[swebench]'"


class InstanceError(Exception):
    """An instances or predictions file that cannot be used as it is."""


@dataclass(frozen=True)
class Instance:
    instance_id: str
    problem_statement: str
    repo: str = ""
    base_commit: str = ""
    patch: str = ""
    test_patch: str = ""
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    image: str | None = None
    repo_path: str | None = None
    repo_bundle: str | None = None
    test_cmd: str | None = None
    eval_script: str | None = None
    log_parser: str | None = None
    eval_type: str | None = None
    version: str = ""
    source: Path | None = None
    """The file the instance came from (relative repository paths are relative to it)."""

    def local_repository(self) -> Path | None:
        """``repo_path`` or ``repo_bundle``, resolved against the instances file."""
        named = self.repo_path or self.repo_bundle
        if not named:
            return None
        path = Path(named).expanduser()
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path.absolute()  # git runs elsewhere: `--instances set.jsonl` must still hold


_INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")


def check_instance_id(instance_id: object, where: str) -> str:
    """An instance id that can name a folder of its own (logs, reports); InstanceError else."""
    if instance_id is None or instance_id == "":
        raise InstanceError(f"{where} has no instance_id")
    if not isinstance(instance_id, str):
        kind = type(instance_id).__name__
        raise InstanceError(f"{where}: instance_id must be a string, not {kind}")
    if not _INSTANCE_ID.fullmatch(instance_id) or ".." in instance_id:
        raise InstanceError(
            f"{where}: instance_id {instance_id!r} cannot name a folder (letters, digits and "
            "._+- only, not starting with a dot)"
        )
    return instance_id


def swebench_image_name(instance_id: str) -> str:
    """SWE-bench's published evaluation image for an instance (``__`` is not allowed in names)."""
    return f"swebench/sweb.eval.x86_64.{instance_id.replace('__', '_1776_')}:latest".lower()


def _tests(value: Any, key: str, instance_id: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InstanceError(f"{instance_id}: {key} is not a JSON list") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InstanceError(f"{instance_id}: {key} must be a list of test names")
    return value


def _records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return read_parquet(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InstanceError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InstanceError(f"{path} is not UTF-8 text (byte {error.start})") from None
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise InstanceError(f"{path}: line {number} is not JSON: {error}") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InstanceError(f"{path} is not valid JSON: {error}") from None
    if isinstance(data, dict):  # SWE-agent's {instance_id: record} form
        return list(data.values())
    if not isinstance(data, list):
        raise InstanceError(f"{path} must hold a list of objects")
    return data


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """The rows of a Parquet file (as the Hugging Face hub stores datasets) as records."""
    try:
        import pyarrow.parquet  # type: ignore[import-untyped]  # the swebench extra
    except ImportError:
        raise InstanceError(f"reading {path.name} needs pyarrow: {INSTALL}") from None
    try:
        rows: list[dict[str, Any]] = pyarrow.parquet.read_table(path).to_pylist()
    except (OSError, pyarrow.ArrowException) as error:
        raise InstanceError(f"{path} is not a readable Parquet file: {error}") from None
    return rows


def _text(record: dict[str, Any], key: str, instance_id: str) -> str | None:
    """A field that must be text when present (None when absent or empty)."""
    value = record.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InstanceError(f"{instance_id}: {key} must be a string, not {type(value).__name__}")
    return value


def load_instances(path: Path) -> list[Instance]:
    """The instances in ``path`` (``.jsonl``, ``.json`` or ``.parquet``), in order."""
    instances = []
    for number, record in enumerate(_records(path), 1):
        if not isinstance(record, dict):
            raise InstanceError(f"{path}: entry {number} is not an object")
        iid = check_instance_id(record.get("instance_id"), f"{path}: entry {number}")
        if not isinstance(record.get("problem_statement"), str):
            raise InstanceError(f"{iid}: no problem_statement")
        text = {
            key: _text(record, key, iid)
            for key in ("repo", "base_commit", "patch", "test_patch", "image_name",
                        "docker_image", "image", "repo_path", "repo_bundle", "test_cmd",
                        "eval_script", "log_parser", "eval_type", "version")
        }  # fmt: skip
        base_commit = text["base_commit"] or ""
        if base_commit and not _COMMIT.fullmatch(base_commit):
            raise InstanceError(f"{iid}: base_commit {base_commit!r} is not a commit id")
        if text["eval_type"] not in (None, "pass_and_fail", "fail_only"):
            raise InstanceError(f"{iid}: eval_type must be pass_and_fail or fail_only")
        instances.append(
            Instance(
                instance_id=iid,
                problem_statement=record["problem_statement"],
                repo=text["repo"] or "",
                base_commit=base_commit,
                patch=text["patch"] or "",
                test_patch=text["test_patch"] or "",
                fail_to_pass=_tests(record.get("FAIL_TO_PASS"), "FAIL_TO_PASS", iid),
                pass_to_pass=_tests(record.get("PASS_TO_PASS"), "PASS_TO_PASS", iid),
                image=text["image"] or text["image_name"] or text["docker_image"],
                repo_path=text["repo_path"],
                repo_bundle=text["repo_bundle"],
                test_cmd=text["test_cmd"],
                eval_script=text["eval_script"],
                log_parser=text["log_parser"],
                eval_type=text["eval_type"],
                version=text["version"] or "",
                source=path,
            )
        )
    counts = Counter(i.instance_id for i in instances)
    duplicates = sorted(iid for iid, count in counts.items() if count > 1)
    if duplicates:
        raise InstanceError(f"{path}: instance ids appear twice: {', '.join(duplicates)}")
    return instances


def only_ids(instances: list[Instance], ids: list[str] | None, source: str) -> list[Instance]:
    """Just the instances named in ``ids`` (all when None); InstanceError for an unknown id."""
    if not ids:
        return instances
    known = {i.instance_id for i in instances}
    missing = [i for i in ids if i not in known]
    if missing:
        raise InstanceError(f"not in {source}: {', '.join(missing)}")
    return [i for i in instances if i.instance_id in set(ids)]


def select(
    instances: list[Instance],
    *,
    pattern: str | None = None,
    span: str | None = None,
    shard: str | None = None,
) -> list[Instance]:
    """The instances a run takes, as mini-swe-agent picks them: ids matching ``pattern`` (a
    regex, from the start), then the ``span`` ``START:END`` of those (Python slice bounds),
    then shard ``I/N``: every Nth from the Ith (1-based), for splitting work over CI jobs."""
    if pattern is not None:
        try:
            matcher = re.compile(pattern)
        except re.error as error:
            raise InstanceError(
                f"--filter {pattern!r} is not a regular expression: {error}"
            ) from None
        instances = [i for i in instances if matcher.match(i.instance_id)]
    if span is not None:
        start, colon, end = span.partition(":")
        try:
            bounds = [int(b) if b.strip() else None for b in (start, end)]
        except ValueError:
            bounds = []
        if not colon or len(bounds) != 2:
            raise InstanceError(f"--slice {span!r} is not START:END (e.g. 0:50, :10, 100:)")
        instances = instances[bounds[0] : bounds[1]]
    if shard is not None:
        index, slash, count = shard.partition("/")
        if not (slash and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
            raise InstanceError(f"--shard {shard!r} is not I/N with 1 <= I <= N (e.g. 2/4)")
        instances = instances[int(index) - 1 :: int(count)]
    return instances


@dataclass(frozen=True)
class Prediction:
    instance_id: str
    model_name_or_path: str
    model_patch: str | None

    def to_json(self) -> str:
        return json.dumps(
            {
                "instance_id": self.instance_id,
                "model_name_or_path": self.model_name_or_path,
                "model_patch": self.model_patch,
            }
        )


def load_predictions(path: Path) -> dict[str, Prediction]:
    """Predictions by instance id (JSONL or JSON; a later line for an id wins)."""
    if not path.exists():
        return {}
    found = {}
    for number, record in enumerate(_records(path), 1):
        if not isinstance(record, dict):
            raise InstanceError(f"{path}: prediction {number} is not an object")
        check_instance_id(record.get("instance_id"), f"{path}: prediction {number}")
        patch = record.get("model_patch")
        found[record["instance_id"]] = Prediction(
            record["instance_id"],
            str(record.get("model_name_or_path", "")),
            patch if isinstance(patch, str) else None,
        )
    return found
