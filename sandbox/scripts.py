"""The bash that runs inside a sandbox, shared by the Docker and the local backend.

Everything the sandbox does to files is done by these scripts *inside* the sandbox, so paths are
resolved in the sandbox's own filesystem view (a symlink made by the model cannot lead a write to
the host) and the same code serves both backends.
"""

from __future__ import annotations

import secrets
import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable

from ponder.sandbox.base import (
    IS_DIRECTORY,
    NOT_A_DIRECTORY,
    NOT_FOUND,
    OUTSIDE_WORKSPACE,
    TOO_LARGE,
    FileAccessError,
    SandboxError,
)

STATE_DIR = "/tmp/.ponder"
"""Per-sandbox state: working directory, exported variables, full output logs."""
LOG_DIR = f"{STATE_DIR}/logs"
KILL_GRACE_S = 5
EXEC_ID_VARIABLE = "PONDER_EXEC_ID"
MAX_FILE_BYTES = 10 * 1024 * 1024
"""Largest file the file tools read or write whole."""

# Exit codes of the file scripts, mapped to FileAccessError kinds by the backends.
OUTSIDE_WORKSPACE_EXIT = 91
NOT_FOUND_EXIT = 92
IS_DIRECTORY_EXIT = 93
TOO_LARGE_EXIT = 94
WRITE_FAILED_EXIT = 95
NOT_A_DIRECTORY_EXIT = 96

_FILE_ERRORS = {
    OUTSIDE_WORKSPACE_EXIT: OUTSIDE_WORKSPACE,
    NOT_FOUND_EXIT: NOT_FOUND,
    IS_DIRECTORY_EXIT: IS_DIRECTORY,
    TOO_LARGE_EXIT: TOO_LARGE,
    NOT_A_DIRECTORY_EXIT: NOT_A_DIRECTORY,
}


def check_file_op(code: int, path: str) -> None:
    """Raise what a file script's exit code means."""
    if code in _FILE_ERRORS:
        raise FileAccessError(_FILE_ERRORS[code], path)
    if code != 0:
        raise SandboxError(f"file operation on {path} failed (exit {code})")


EXIT_MARKER = b"PONDER_EXIT "
END_PREFIX = b"\x00\x1bPONDER_END_"


def end_token() -> str:
    """A fresh secret for one command's end-of-output marker (:func:`end_marker`)."""
    return secrets.token_hex(16)


def end_marker(token: str) -> bytes:
    """The runner's last bytes on stdout, written after the exit marker on stderr. The two
    streams travel apart (Docker copies each in its own goroutine), so the exit marker can
    arrive before the end of the output; this says the output is complete.

    The token is new for every command, and the host sends it to the runner only once the
    exit marker came, that is once the command has ended: no process of the command can know
    it while the command runs (not even by reading the runner's memory), so none can print it
    to cut the command's output short. A background job that steals it from the runner's stdin
    afterwards only makes the host wait a moment for output that is over anyway."""
    return END_PREFIX + token.encode() + b"\x00"


def runner_input(command_script: str) -> bytes:
    """The runner's stdin, up to the end token: the script's length, then the script."""
    script = command_script.encode()
    return b"%d\n%s" % (len(script), script)


def token_line(token: str) -> bytes:
    """What the host sends the runner once the command has ended."""
    return f"{token}\n".encode()


RUNAWAY_PROCESSES = 64
"""More processes than this in one process group, when a command ends or while the sandbox runs
short of processes, are taken for a fork bomb and killed. A count, not a judgement of what each
process is doing: a job about to redirect its output (``server > log 2>&1 &``) looks, for a
moment, exactly like one that holds it, so nothing is ever killed for holding the output."""
RUNAWAY_NOTICE = (
    "more than {n} processes started by a command were still running in the background (a "
    "fork bomb?); they were stopped"
)
REAPED = "reaped"
"""In the state directory: the reaper notes there each process group it killed."""
REAPER_PID = "reaper.pid"
TOKEN_WAIT_S = 10
"""How long a runner waits for its end token once its command has ended."""


def runner(timeout: float, state_dir: str = STATE_DIR) -> str:
    """Reads a command script from stdin (:func:`runner_input`), runs it with stdin closed,
    and once it has ended, reads the end token (:func:`end_marker`).

    The command's stdout and stderr are merged, so a person sees them in the order they were
    written. GNU ``timeout`` leads the command's process group and signals all of it: TERM at
    the limit, KILL ``KILL_GRACE_S`` later.

    Processes the command leaves running in the background keep running, whether or not they
    still hold its output: the host stops reading at :func:`end_marker`, so a holder keeps
    nothing waiting, and what it writes later is not shown. Only more than
    :data:`RUNAWAY_PROCESSES` of them (a fork bomb) are killed, at once, with shell builtins
    only, so it works even when the process limit is exhausted; a bomb still small at that
    moment is the :func:`reaper_script`'s. The runner then writes ``EXIT_MARKER``, the exit
    code, what it found (0 nothing left, 1 left running, 2 runaways killed, by it or since the
    last command by the reaper) and whether the reaper runs (1 or 0) to its own stderr, which
    nothing the command started can hold open; then it waits (at most
    :data:`TOKEN_WAIT_S`) for the token, and ends its stdout with the end marker.
    """
    marker = EXIT_MARKER.decode()
    reaped, reaper = f"{state_dir}/{REAPED}", f"{state_dir}/{REAPER_PID}"
    return (
        "IFS= read -r n || exit 1\n"
        f'f=$(mktemp {state_dir}/cmd.XXXXXX) && head -c "$n" >"$f" || exit 1\n'
        f'timeout -k {KILL_GRACE_S} {timeout:g} bash --noprofile --norc "$f" </dev/null 2>&1 &\n'
        't=$!; wait "$t"; rc=$?; left=0\n'
        'if kill -0 -- "-$t" 2>/dev/null; then\n'
        "  left=1; n=0\n"
        "  for d in /proc/[0-9]*; do\n"
        '    read -r s <"$d/stat" 2>/dev/null || continue\n'
        "    s=${s##*) }; set -- $s\n"
        '    [ "$3" = "$t" ] && n=$((n + 1))\n'
        "  done\n"
        f'  if [ "$n" -gt {RUNAWAY_PROCESSES} ]; then\n'
        '    left=2; { kill -9 -- "-$t"; kill -9 -- "-$t"; } 2>/dev/null\n'
        "  fi\n"
        "fi\n"
        f"if [ -s {reaped} ]; then left=2; : >{reaped}; fi\n"
        f'r=0; read -r p 2>/dev/null <{reaper} && [ -d "/proc/$p" ] && r=1\n'
        f'printf \'{marker}%d %d %d\\n\' "$rc" "$left" "$r" >&2\n'
        f"IFS= read -r -t {TOKEN_WAIT_S} end && printf '\\000\\033PONDER_END_%s\\000' \"$end\"\n"
        'exit "$rc"\n'
    )


def reaper_script(pids_limit: int, state_dir: str = STATE_DIR) -> str:
    """A watcher for the sandbox's whole life: when its processes pass three quarters of
    ``pids_limit``, every process group of more than :data:`RUNAWAY_PROCESSES` is killed (a fork
    bomb that outlived its command) and noted for the next command's report. Its loop uses
    shell builtins only, so it works while no process can be started."""
    fifo = f"{state_dir}/reaper.fifo"
    return (
        f"rm -f {fifo}; mkfifo {fifo} && exec 9<>{fifo} || exit 1\n"
        f"printf '%s\\n' $$ >{state_dir}/{REAPER_PID}\n"
        "read -r s </proc/$$/stat; s=${s##*) }; set -- $s; own=$3\n"
        "while :; do\n"
        "  read -t 0.5 -u 9 _\n"
        "  n=0; for d in /proc/[0-9]*; do n=$((n + 1)); done\n"
        f"  [ $n -gt {pids_limit * 3 // 4} ] || continue\n"
        "  unset groups; declare -A groups\n"
        "  for d in /proc/[0-9]*; do\n"
        '    read -r s <"$d/stat" 2>/dev/null || continue\n'
        "    s=${s##*) }; set -- $s; groups[$3]=$(( ${groups[$3]:-0} + 1 ))\n"
        "  done\n"
        '  for g in "${!groups[@]}"; do\n'
        f'    [ "${{groups[$g]}}" -gt {RUNAWAY_PROCESSES} ] && [ "$g" != "$own" ] || continue\n'
        f'    kill -9 -- "-$g" 2>/dev/null; printf \'%s\\n\' "$g" >>{state_dir}/{REAPED}\n'
        "  done\n"
        "done\n"
    )


class OutputEnd:
    """Passes the runner's stdout on up to its end marker (:func:`end_marker`), and notes when
    it passed; without a marker (a script of ponder's own), everything passes.

    What comes after it is what background processes wrote once the command had ended: not the
    command's output, and dropped. The few bytes that could be the start of the marker are held
    back until the next piece (or :meth:`close`) shows whether they are.
    """

    def __init__(self, forward: Callable[[bytes], None], marker: bytes | None = None) -> None:
        self.forward = forward
        self.marker = marker
        self.seen = False
        self._held = b""

    def feed(self, data: bytes) -> None:
        if self.seen:
            return
        if self.marker is None:
            self.forward(data)
            return
        marker = self.marker
        data = self._held + data
        at = data.find(marker)
        if at >= 0:
            self.seen, self._held = True, b""
            if at:
                self.forward(data[:at])
            return
        keep = next(
            (n for n in range(min(len(data), len(marker) - 1), 0, -1)
             if marker.startswith(data[-n:])),
            0,
        )  # fmt: skip
        self._held = data[len(data) - keep :]
        if len(data) > keep:
            self.forward(data[: len(data) - keep])

    def close(self) -> None:
        if self._held:
            self.forward(self._held)
            self._held = b""


class ExitReport:
    """Reads the runner's stderr for its exit marker: the exit code, and what of the command's
    process group outlived it (see :func:`runner`)."""

    def __init__(self) -> None:
        self._seen = bytearray()
        self.exit_code: int | None = None
        self.left_running = False
        """Processes of the command's group still run in the background."""
        self.killed_runaways = False
        """So many were left (a fork bomb) that the runner or the reaper killed them."""
        self.reaper_running = True

    def feed(self, data: bytes) -> bool:
        """Take stderr bytes; True once the marker is complete."""
        self._seen += data
        at = self._seen.find(EXIT_MARKER)
        if at < 0 or b"\n" not in self._seen[at:]:
            return False
        fields = self._seen[at + len(EXIT_MARKER) :].split(b"\n", 1)[0].split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            self.exit_code = int(fields[0])
            self.left_running = fields[1] == b"1"
            self.killed_runaways = fields[1] == b"2"
            self.reaper_running = fields[2] == b"1"
            return True
        return False


def command_script(command: str, workdir: str, state_dir: str = STATE_DIR) -> str:
    """``command`` wrapped so the working directory and exported variables carry over.

    Builtins only around the command (each fork costs a millisecond on every command): the
    saved variables are sourced back, except the exec id, which must stay this command's.
    """
    s = shlex.quote(state_dir)
    w = shlex.quote(workdir)
    save = f'__ponder_rc=$?; printf "%s\\n" "$PWD" >{s}/cwd; export -p >{s}/env; exit $__ponder_rc'
    prelude = (
        'rm -f -- "$0"\n'
        f"__ponder_id=${EXEC_ID_VARIABLE}\n"
        f"[ -r {s}/env ] && . {s}/env 2>/dev/null\n"
        f"{EXEC_ID_VARIABLE}=$__ponder_id\n"
        f"read -r __ponder_cwd 2>/dev/null <{s}/cwd\n"
        f'cd "${{__ponder_cwd:-{workdir}}}" 2>/dev/null || cd {w}\n'
        "unset __ponder_id __ponder_cwd\n"
        f"trap {shlex.quote(save)} EXIT\n"
    )
    return prelude + command + "\n"


def _resolve(workdir: str) -> str:
    """Resolve $1 (symlinks included) and refuse anything outside ``workdir``."""
    w = shlex.quote(workdir)
    return (
        f'p=$(realpath -m -- "$1") || exit {NOT_FOUND_EXIT}\n'
        f'case "$p" in {w}|{w}/*) ;; *) exit {OUTSIDE_WORKSPACE_EXIT} ;; esac\n'
    )


def read_script(workdir: str) -> str:
    return _resolve(workdir) + (
        f'[ -e "$p" ] || exit {NOT_FOUND_EXIT}\n'
        f'[ -d "$p" ] && exit {IS_DIRECTORY_EXIT}\n'
        f'[ "$(stat -c %s -- "$p")" -le {MAX_FILE_BYTES} ] || exit {TOO_LARGE_EXIT}\n'
        'exec cat -- "$p"\n'
    )


def write_script(workdir: str) -> str:
    """Atomic replace: a temp file in the same directory, the old mode kept, then a rename."""
    return _resolve(workdir) + (
        f'[ -d "$p" ] && exit {IS_DIRECTORY_EXIT}\n'
        f'mkdir -p -- "$(dirname -- "$p")" || exit {WRITE_FAILED_EXIT}\n'
        f't=$(mktemp "$(dirname -- "$p")/.ponder-write.XXXXXX") || exit {WRITE_FAILED_EXIT}\n'
        f'cat >"$t" || {{ rm -f -- "$t"; exit {WRITE_FAILED_EXIT}; }}\n'
        '[ -e "$p" ] && chmod --reference="$p" -- "$t"\n'
        '[ -e "$p" ] || chmod 644 -- "$t"\n'
        f'mv -f -- "$t" "$p" || {{ rm -f -- "$t"; exit {WRITE_FAILED_EXIT}; }}\n'
    )


def list_script(workdir: str) -> str:
    """Entries under $1, $2 levels deep, hidden ones left out, one per line."""
    return _resolve(workdir) + (
        f'[ -e "$p" ] || exit {NOT_FOUND_EXIT}\n'
        f'[ -d "$p" ] || exit {NOT_A_DIRECTORY_EXIT}\n'
        'cd -- "$p" && exec find . -mindepth 1 -maxdepth "$2" '
        "-not -path '*/.*' -printf '%P\\n'\n"
    )


class ScriptedFiles(ABC):
    """A sandbox's file operations (read, write, list) done by the scripts above; a backend
    says where its workspace is and how it runs a script."""

    @property
    @abstractmethod
    def workdir(self) -> str: ...

    @abstractmethod
    def _run_file_script(self, argv: list[str], data: bytes | None, path: str) -> tuple[int, bytes]:
        """Run ``argv`` with ``data`` as its stdin; its exit code and output. Raises
        :class:`SandboxError` when it does not finish in time."""

    def _file_op(self, script: str, path: str, data: bytes | None, *extra: str) -> bytes:
        absolute = path if path.startswith("/") else f"{self.workdir}/{path}"
        argv = ["bash", "--noprofile", "--norc", "-c", script, "ponder-file", absolute, *extra]
        code, output = self._run_file_script(argv, data, path)
        check_file_op(code, path)
        return output

    def read_file(self, path: str) -> bytes:
        return self._file_op(read_script(self.workdir), path, None)

    def write_file(self, path: str, data: bytes) -> None:
        self._file_op(write_script(self.workdir), path, data)

    def list_dir(self, path: str, depth: int) -> list[str]:
        listing = self._file_op(list_script(self.workdir), path, None, str(depth))
        return sorted(listing.decode("utf-8", errors="replace").splitlines())


def save_log_script() -> str:
    """Store stdin as the full output log $1 (outside the workspace, for the model to grep)."""
    return f'mkdir -p {LOG_DIR} && cat >"$1"\n'


def sweep_script() -> str:
    """Kill every process that still carries the exec id $1, and wait until they are dead.

    Every process a command starts inherits its exec id, daemons that left its process group
    included, so this finds what a timed-out or interrupted command left behind. SIGKILL takes
    effect when a process is next scheduled, so the script then waits (up to about 2 s) until
    each is gone or a zombie: when the exec returns, the command has stopped.
    """
    return (
        "killed=\n"
        "for e in /proc/[0-9]*/environ; do\n"
        "  p=${e#/proc/}; p=${p%/environ}\n"
        '  [ "$p" = "$$" ] && continue\n'
        f'  if tr "\\0" "\\n" <"$e" 2>/dev/null | grep -qxF "{EXEC_ID_VARIABLE}=$1"; then\n'
        '    kill -9 "$p" 2>/dev/null && killed="$killed $p"\n'
        "  fi\n"
        "done\n"
        "n=0\n"
        'while [ -n "$killed" ] && [ $n -lt 200 ]; do\n'
        "  left=\n"
        "  for p in $killed; do\n"
        '    read -r s <"/proc/$p/stat" 2>/dev/null || continue\n'
        '    s=${s##*) }; [ "${s%% *}" = Z ] || left="$left $p"\n'
        "  done\n"
        "  killed=$left; n=$((n + 1))\n"
        '  [ -n "$killed" ] && { sleep 0.01 2>/dev/null || :; }\n'
        "done\n"
        "exit 0\n"
    )


def oom_count_script() -> str:
    """How many processes the memory limit has killed so far (cgroup v2, else v1)."""
    return (
        "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null "
        "| awk '/^oom_kill /{n=$2; exit} END{print n+0}'\n"
    )
