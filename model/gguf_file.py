"""Reading a GGUF's metadata and tensor table without loading any weights.

A split model (``name-00001-of-00008.gguf``) is opened from its first file; the other files are
found beside it and their tensors join the table. Every tensor is sorted into a group that the
offload planner places as a unit.
"""

from __future__ import annotations

import math
import mmap
import re
import struct
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


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
             10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
MAX_KEPT_ARRAY = 1024
"""Arrays longer than this (the vocabulary's tokens, scores, merges) keep only their length."""


class _Header:
    """A reader over a GGUF's header: key-value metadata and the tensor table, never the
    weights. Long arrays are skipped, not decoded: a 262K-token vocabulary costs a pass over
    its string lengths, not 262K Python objects (gguf's own reader took 25 s on Gemma 3)."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.take("<Q")
        text = bytes(self.data[self.at : self.at + size]).decode("utf-8", errors="replace")
        self.at += size
        return text

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.take("<I"), self.take("<Q")
            if count <= MAX_KEPT_ARRAY:
                return [self.value(item) for _ in range(count)]
            self.skip(item, count)
            return count
        return self.take(_SCALARS[kind])

    def skip(self, item: int, count: int) -> None:
        if item == _STRING:
            for _ in range(count):
                self.at += 8 + struct.unpack_from("<Q", self.data, self.at)[0]
        elif item == _ARRAY:
            for _ in range(count):
                inner, n = self.take("<I"), self.take("<Q")
                self.skip(inner, n)
        else:
            self.at += struct.calcsize(_SCALARS[item]) * count


def _read_shard(path: Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        header = _Header(data)
        if bytes(data[:4]) != GGUF_MAGIC:
            raise ValueError("no GGUF magic")
        header.at = 4
        version = header.take("<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        n_tensors, n_fields = header.take("<Q"), header.take("<Q")
        metadata = {}
        for _ in range(n_fields):
            name = header.string()
            metadata[name] = header.value(header.take("<I"))
        metadata.pop("tokenizer.ggml.merges", None)
        tokens = metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list):  # what matters is how many
            metadata["tokenizer.ggml.tokens"] = len(tokens)
        tensors = []
        data_end = 0
        for _ in range(n_tensors):
            name = header.string()
            dims = [header.take("<Q") for _ in range(header.take("<I"))]
            kind = GGMLQuantizationType(header.take("<I"))
            offset = header.take("<Q")
            n_elements = math.prod(dims)
            block, size = GGML_QUANT_SIZES[kind]
            n_bytes = n_elements // block * size
            tensors.append(TensorInfo(name, kind.name, n_elements, n_bytes))
            data_end = max(data_end, offset + n_bytes)
        alignment = int(metadata.get("general.alignment", 32))
        start = -(-header.at // alignment) * alignment
        if start + data_end > len(data):
            raise ValueError(f"the weights need {start + data_end} bytes, the file has {len(data)}")
    return metadata, tensors


def read_gguf(path: str | Path) -> GGUFModel:
    """The metadata and tensor table of a GGUF; raises :class:`ConfigurationError` on bad files."""
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
            metadata, tensors = _read_shard(shard)
        except Exception as exc:  # a damaged file fails in many ways: all of them say so
            raise ConfigurationError(
                f"{shard} is truncated or corrupt ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
        if model is None:
            model = GGUFModel(path=first, shards=shards, metadata=metadata)
        model.tensors.extend(tensors)
    assert model is not None
    return model
