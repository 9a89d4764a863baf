"""Sizes as people write them, read one way everywhere (config file, flags, ``--help``).

``24G`` and ``80GB`` are powers of 1000, ``141GiB`` powers of 1024; letters may be lower case
(``512m``) and the ``B`` left out; a plain number is gigabytes (no limit here is a few bytes, and
``--gpu-mem 24`` means 24 GB); ``0`` is zero.
"""

from __future__ import annotations

import argparse
import re

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text``; ValueError says how to write a size."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (write it like 24G, 80GB, 512MiB or 2GiB)")
    number, unit, binary = float(match.group(1)), match.group(2).lower(), match.group(3)
    power = " kmgt".index(unit or "g")
    return int(number * (1024 if binary else 1000) ** power)


def format_size(n_bytes: float) -> str:
    """``8GiB``, ``500MB``: the shortest exact spelling parse_size reads back (bytes else)."""
    if n_bytes == 0:
        return "0"
    for base, suffix in ((1024, "iB"), (1000, "B")):
        for power, letter in ((4, "T"), (3, "G"), (2, "M"), (1, "K")):
            if n_bytes % base**power == 0:
                return f"{int(n_bytes // base**power)}{letter}{suffix}"
    return f"{n_bytes / 1e9:g}GB"


def size(text: str) -> int:
    """:func:`parse_size` as an argparse type: a bad size is a usage error naming the flag."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
