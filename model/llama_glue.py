"""What llama-cpp-python does not expose, reached through ctypes: tensor placement and the log.

``tensor_buft_overrides`` is a field of llama.cpp's model parameters (what ``--cpu-moe``,
``--n-cpu-moe`` and ``-ot`` set) that llama-cpp-python declares but never fills. ``Llama()``
builds its parameters from ``llama_model_default_params()`` and then loads the model at once,
so :func:`placement_overrides` hands it defaults with the override array already in place.
The array must live until loading ends, which the context manager guarantees.
"""

from __future__ import annotations

import ctypes
import re
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ponder.model.backend import ConfigurationError
from ponder.model.cpu_features import built_features, cmake_args, probe_cached, unusable

_DEVICE_GPU = 1  # enum ggml_backend_dev_type: CPU, GPU, IGPU, ACCEL, META
_OVERRIDDEN_RE = re.compile(r"tensor (\S+) \(.*\) buffer type overridden to (\S+)")
_load_lock = threading.Lock()


class _Override(ctypes.Structure):
    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def _ggml() -> Any:
    from llama_cpp._ggml import libggml

    lib = libggml
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_buffer_type.restype = ctypes.c_void_p
    lib.ggml_backend_dev_buffer_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_buft_name.restype = ctypes.c_char_p
    lib.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    return lib


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    is_gpu: bool
    buffer_type: str
    free_bytes: int
    total_bytes: int


def devices() -> list[Device]:
    """The compute devices of the loaded llama.cpp build (the CPU, and GPUs in a CUDA build)."""
    lib = _ggml()
    found = []
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        found.append(
            Device(
                name=lib.ggml_backend_dev_name(device).decode(),
                is_gpu=lib.ggml_backend_dev_type(device) == _DEVICE_GPU,
                buffer_type=lib.ggml_backend_buft_name(
                    lib.ggml_backend_dev_buffer_type(device)
                ).decode(),
                free_bytes=free.value,
                total_bytes=total.value,
            )
        )
    return found


def _buffer_types() -> dict[str, int]:
    lib = _ggml()
    names = {}
    for index in range(lib.ggml_backend_dev_count()):
        buffer_type = lib.ggml_backend_dev_buffer_type(lib.ggml_backend_dev_get(index))
        names[lib.ggml_backend_buft_name(buffer_type).decode().upper()] = buffer_type
    return names


@contextmanager
def placement_overrides(overrides: Sequence[tuple[str, str]]) -> Iterator[None]:
    """While active, ``Llama()`` loads with these (pattern, buffer type) overrides."""
    if not overrides:
        yield
        return
    import llama_cpp.llama_cpp as api

    known = _buffer_types()
    array = (_Override * (len(overrides) + 1))()
    patterns = [pattern.encode() for pattern, _ in overrides]  # kept alive with the array
    for slot, ((_, buffer_type), pattern) in enumerate(zip(overrides, patterns, strict=True)):
        if buffer_type.upper() not in known:
            raise ConfigurationError(
                f"unknown buffer type {buffer_type!r} in a tensor override; this llama.cpp "
                f"build has: {', '.join(sorted(known))}"
            )
        array[slot].pattern = pattern
        array[slot].buft = known[buffer_type.upper()]
    original = api.llama_model_default_params

    def with_overrides() -> Any:
        params = original()
        params.tensor_buft_overrides = ctypes.cast(array, ctypes.c_void_p)
        return params

    with _load_lock:
        api.llama_model_default_params = with_overrides
        try:
            yield
        finally:
            api.llama_model_default_params = original


class _Log:
    """llama.cpp's log, kept off the terminal once ponder loads a model.

    llama-cpp-python's own handler prints errors to stderr, where they would break the TUI's
    screen and a one-liner's output; llama.cpp logs every interrupted decode as an error. Here
    the lines of a load go to whoever captures it, and error lines to a short record that a
    failure can quote.
    """

    _ERROR, _CONTINUED = 3, 5  # enum ggml_log_level: NONE, INFO, WARN, ERROR, DEBUG, CONT

    def __init__(self) -> None:
        self.capture: list[str] | None = None
        self.errors: deque[str] = deque(maxlen=8)
        self._pending: list[str] = []
        self._level = 0
        self._callback: Any = None  # the ctypes callback must outlive its use by llama.cpp

    def install(self) -> None:
        if self._callback is None:
            import llama_cpp

            self._callback = llama_cpp.llama_log_callback(self._feed)
            llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _feed(self, level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level != self._CONTINUED:
            self._level = level
        self._pending.append(text.decode("utf-8", errors="replace"))
        if not self._pending[-1].endswith("\n"):
            return
        for line in "".join(self._pending).splitlines():
            if self.capture is not None:
                self.capture.append(line)
            if self._level == self._ERROR:
                self.errors.append(line)
        self._pending.clear()


_log = _Log()


@contextmanager
def captured_log() -> Iterator[list[str]]:
    """Collect llama.cpp's log lines (all levels) while the block runs; none are printed, then
    or later."""
    _log.install()
    lines: list[str] = []
    _log.capture = lines
    try:
        yield lines
    finally:
        _log.capture = None


class CallbackExceptions:
    """Exceptions raised inside llama.cpp's abort callback, kept instead of printed.

    A signal handler that raises (SIGTERM's SystemExit, Ctrl-C's KeyboardInterrupt) runs where
    Python code runs next, which can be that callback. ctypes cannot pass an exception back
    through C: it would print a traceback and drop it, and the decode would fail as if
    llama.cpp had. While :meth:`watching`, such an exception is kept here instead; the abort
    callback then stops the decode, and the caller raises it once the decode has returned.
    """

    def __init__(self) -> None:
        self.pending: BaseException | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        previous = sys.unraisablehook

        def keep(args: Any) -> None:
            if isinstance(args.exc_value, KeyboardInterrupt | SystemExit):
                self.pending = self.pending or args.exc_value
            else:
                previous(args)

        sys.unraisablehook = keep
        try:
            yield
        finally:
            sys.unraisablehook = previous

    def raise_pending(self) -> None:
        if self.pending is not None:
            error, self.pending = self.pending, None
            raise error


def logged_errors() -> list[str]:
    """The error lines llama.cpp logged since the last call."""
    errors = list(_log.errors)
    _log.errors.clear()
    return errors


def overridden_tensors(log: list[str]) -> dict[str, str]:
    """Tensor name -> buffer type, for every override the load log reports as applied."""
    return {m.group(1): m.group(2) for line in log if (m := _OVERRIDDEN_RE.search(line))}


def build_problem() -> str | None:
    """Why the installed llama.cpp would crash on this CPU (it uses an instruction set extension
    that does not run here, see :mod:`~ponder.model.cpu_features`); None when it will not."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    result = probe_cached()
    bad = unusable(built_features(info), result)
    if not bad:
        return None
    why = "; ".join(f"{name}: {result.detail.get(name) or 'does not run'}" for name in bad)
    return (
        f"the installed llama.cpp uses {', '.join(bad)}, which this CPU cannot run ({why}), so "
        "it would die on the first real model. Rebuild it for this machine: run ./install.sh "
        "in ponder's checkout, or CMAKE_ARGS=\"" + " ".join(cmake_args(result)) + '" pip '
        "install --force-reinstall --no-cache-dir --no-deps llama-cpp-python"
    )
