"""Reading a GGUF's metadata and tensor table without loading any weights.

A split model (``name-00001-of-00008.gguf``) is opened from its first file; the other files are
found beside it and their tensors join the table. Every tensor is sorted into a group that the
offload planner places as a unit.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.model.backend import ConfigurationError

GGUF_MAGIC = b"GGUF"
SPLIT_RE = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
EXPERTS_RE = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps")
"""llama.cpp's pattern for routed-expert tensors (what --cpu-moe moves to the CPU)."""
BLOCK_RE = re.compile(r"^blk\.(\d+)\.")

GROUPS = ("embeddings", "attention", "dense_ffn", "router", "shared_experts", "routed_experts")


def tensor_group(name: str) -> str:
    """The placement group of a tensor, by llama.cpp's tensor names."""
    if EXPERTS_RE.search(name):
        return "routed_experts"
    if "_shexp" in name:
        return "shared_experts"
    if ".ffn_gate_inp" in name or ".exp_probs_b" in name:
        return "router"
    if ".ffn_" in name:
        return "dense_ffn"
    if BLOCK_RE.match(name):
        return "attention"
    return "embeddings"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    type_name: str
    """ggml type, e.g. ``Q4_0``."""
    n_elements: int
    n_bytes: int

    @property
    def group(self) -> str:
        return tensor_group(self.name)

    @property
    def block(self) -> int | None:
        match = BLOCK_RE.match(self.name)
        return int(match.group(1)) if match else None


@dataclass
class GGUFModel:
    path: Path
    shards: list[Path]
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def block_count(self) -> int:
        return int(self.arch_value("block_count", 0))

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return int(value) if value is not None else None

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return str(value) if value else None

    @property
    def has_tokenizer(self) -> bool:
        return bool(self.metadata.get("tokenizer.ggml.model")) and bool(
            self.metadata.get("tokenizer.ggml.tokens")
        )

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    def bytes_by_group(self) -> dict[str, int]:
        sizes: dict[str, int] = defaultdict(int)
        for tensor in self.tensors:
            sizes[tensor.group] += tensor.n_bytes
        return dict(sizes)

    def types_by_group(self) -> dict[str, list[str]]:
        types: dict[str, set[str]] = defaultdict(set)
        for tensor in self.tensors:
            types[tensor.group].add(tensor.type_name)
        return {group: sorted(names) for group, names in types.items()}

    def expert_bytes_by_block(self) -> dict[int, int]:
        sizes: dict[int, int] = defaultdict(int)
        for tensor in self.tensors:
            if tensor.group == "routed_experts" and tensor.block is not None:
                sizes[tensor.block] += tensor.n_bytes
        return dict(sorted(sizes.items()))


def shard_paths(path: Path) -> list[Path]:
    """All files of a split GGUF given its first file (or just ``path``)."""
    match = SPLIT_RE.match(path.name)
    if match is None:
        return [path]
    count = int(match.group("count"))
    stem = match.group("stem")
    shards = [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [s.name for s in shards if not s.exists()]
    if missing:
        raise ConfigurationError(
            f"{path.name} is part {match.group('index')} of a {count}-file model, but "
            f"{', '.join(missing[:3])}{' …' if len(missing) > 3 else ''} is missing beside it"
        )
    return shards


def _field_value(reader: Any, name: str) -> Any:
    value = reader.fields[name].contents()
    if name == "tokenizer.ggml.tokens" and isinstance(value, list):
        return len(value)  # the count is what matters here; the list can hold 160K strings
    return value


def read_gguf(path: str | Path) -> GGUFModel:
    """The metadata and tensor table of a GGUF; raises :class:`ConfigurationError` on bad files."""
    from gguf import GGUFReader

    first = Path(path).expanduser()
    if not first.exists():
        raise ConfigurationError(f"model file not found: {first}")
    if not first.is_file():
        raise ConfigurationError(f"model path is not a file: {first}")
    with first.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ConfigurationError(f"{first} is not a GGUF file (it does not start with 'GGUF')")
    shards = shard_paths(first)
    model: GGUFModel | None = None
    for shard in shards:
        try:
            reader = GGUFReader(shard)
        except Exception as exc:  # the reader raises many kinds on a damaged file
            raise ConfigurationError(
                f"{shard} is truncated or corrupt ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
        if model is None:
            metadata = {
                name: _field_value(reader, name)
                for name in reader.fields
                if not name.startswith("GGUF.") and name != "tokenizer.ggml.merges"
            }
            model = GGUFModel(path=first, shards=shards, metadata=metadata)
        model.tensors.extend(
            TensorInfo(
                name=t.name,
                type_name=t.tensor_type.name,
                n_elements=int(t.n_elements),
                n_bytes=int(t.n_bytes),
            )
            for t in reader.tensors
        )
    assert model is not None
    return model
