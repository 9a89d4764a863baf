"""SWE-bench datasets by name (``SWE-bench/SWE-bench_Verified``) from the local Hugging Face cache.

``datasets.load_dataset`` (as mini-swe-agent and the harness call it) first downloads the hub
repository's Parquet files into the hub cache, ``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or
``~/.cache/huggingface/hub``, as ``datasets--ORG--NAME/snapshots/REVISION/.../SPLIT-*.parquet``.
ponder reads those files; it downloads nothing, so a dataset not yet in the cache gets a line
saying how to fetch it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ponder.runtime.swe.instances import Instance, InstanceError, load_instances, only_ids

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "huggingface" / "hub"


def split_files(name: str, split: str) -> list[Path]:
    """The cached Parquet files of ``name``'s ``split``, in shard order."""
    wanted = "datasets--" + name.replace("/", "--")
    cache = hub_cache()
    folders = [p for p in cache.glob("datasets--*") if p.name.lower() == wanted.lower()]
    fetch = f"python -c \"import datasets; datasets.load_dataset('{name}', split='{split}')\""
    if not folders:
        raise InstanceError(f"{name} is not in the Hugging Face cache ({cache}); fetch it: {fetch}")
    folder = folders[0]
    ref = folder / "refs" / "main"
    revisions = [folder / "snapshots" / ref.read_text().strip()] if ref.is_file() else []
    revisions += sorted((folder / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)[::-1]
    for revision in revisions:
        files = sorted(
            p
            for p in revision.rglob("*.parquet")
            if p.stem == split or p.stem.startswith(f"{split}-")
        )
        if files:
            return files
    raise InstanceError(f"{name} in {cache} has no {split!r} split; fetch it: {fetch}")


def load_source(source: str, split: str, ids: list[str] | None = None) -> list[Instance]:
    """Instances from a file (``.jsonl``, ``.json``, ``.parquet``) or a cached dataset name."""
    path = Path(source).expanduser()
    if path.exists() or not _NAME.fullmatch(source):
        return only_ids(load_instances(path), ids, str(path))
    instances: list[Instance] = []
    for part in split_files(source, split):
        instances += load_instances(part)
    return only_ids(instances, ids, f"{source} ({split})")
