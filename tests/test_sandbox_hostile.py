"""Hostile commands against one real sandbox: after each, the sandbox still answers `echo ok`.

The sandbox is shared by the whole module on purpose: every case must leave it usable for the
next. Its limits are small so the memory and disk cases finish quickly. Cases about running
commands (timeouts, output, background jobs, quoting) run against the local backend too, which
shares the runner and the exec reader; cases about isolation (limits, network, the process
table) run only in the container, the only place that promises them. Set
PONDER_HOSTILE_REPORT=FILE to record how long each follow-up `echo ok` took.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from ponder.sandbox.base import Sandbox
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import Limits
from ponder.sandbox.local_sandbox import LocalSandbox

LATENCIES: dict[str, float] = {}


@pytest.fixture(scope="module")
def box(
    sandbox_image: str, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerSandbox]:
    workspace = tmp_path_factory.mktemp("hostile")
    limits = Limits(memory=512 * 1024**2, pids=256, file_size=64 * 1024**2, tmp_size=256 * 1024**2)
    with DockerSandbox(workspace, sandbox_image, client=docker_client, limits=limits) as sandbox:
        yield sandbox
    report = os.environ.get("PONDER_HOSTILE_REPORT")
    if report:
        Path(report).write_text(json.dumps(LATENCIES, indent=2))


@pytest.fixture(scope="module")
def local_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandbox]:
    with LocalSandbox(tmp_path_factory.mktemp("hostile-local")) as sandbox:
        yield sandbox


@pytest.fixture(scope="module", params=[pytest.param("docker", marks=pytest.mark.docker), "local"])
def either(request: pytest.FixtureRequest) -> Sandbox:
    """The container, then the local backend: both promise what these tests check."""
    return request.getfixturevalue("box" if request.param == "docker" else "local_box")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def still_answers(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    box = request.getfixturevalue("either" if "either" in request.fixturenames else "box")
    result = box.exec("echo ok", timeout=10)
    LATENCIES[request.node.name] = round(result.elapsed, 3)
    assert result.output == "ok\n"
    assert not result.timed_out


def count(box: Sandbox, pattern: str) -> int:
    """Processes whose command line matches ``pattern`` (a grep -E pattern written so that it
    does not match itself, e.g. ``[s]leep``).

    The local backend's `ps` sees the whole host, so the tests sleep for lengths nobody else
    picks (71xx, 73xx, 74xx): a person's `sleep 540` in another shell once made a count one
    too many."""
    return int(box.exec(f"ps -eo args | grep -cE '{pattern}' || true", 10).output.strip())


def test_fork_bomb(box: DockerSandbox) -> None:
    """The bomb's first call returns at once. Whether the runner finds it big at that moment or
    the reaper finds the sandbox short of processes a moment later, it is stopped, the model
    is told, and the sandbox works again (a command started while the bomb holds every
    process slot may fail to fork: that is what the model would see too)."""
    notices = [box.exec(":(){ :|:& };:", timeout=5).notice]
    for _ in range(100):
        result = box.exec("ps -e --no-headers | wc -l", 10)
        notices.append(result.notice)
        last = result.output.split()[-1:]  # bash may first say it had to retry a fork
        # init, its sleep, the reaper and the few of this very command
        if last and last[0].isdigit() and int(last[0]) < 12 and any(notices):
            break
        time.sleep(0.2)
    told = [notice for notice in notices if notice]
    assert told
    assert all("(a fork bomb?); they were stopped" in notice for notice in told)


def test_the_reaper_comes_back_after_kill_minus_one(box: DockerSandbox) -> None:
    box.exec("kill -9 -1", timeout=10)  # every process of the command user, the reaper too
    assert box.exec("echo back", 10).output == "back\n"  # this one finds the reaper gone
    assert count(box, "[r]eaper.fifo") == 1
    test_fork_bomb(box)


def test_endless_output(either: Sandbox) -> None:
    result = either.exec("yes", timeout=3)
    assert result.timed_out
    assert result.total_bytes > 1_000_000
    assert len(result.output) < 12_000
    assert result.output.startswith("y\ny\n")
    assert "lines left out" in result.output


def test_a_50_mb_line_without_newline(either: Sandbox) -> None:
    result = either.exec("head -c 50000000 /dev/zero | tr '\\0' a", timeout=60)
    assert result.exit_code == 0
    assert result.total_bytes == 50_000_000
    assert result.output.startswith("aaaa")
    assert "bytes, 0 lines left out" in result.output


def test_an_endless_sleep_returns_at_the_timeout_and_leaves_nothing(either: Sandbox) -> None:
    result = either.exec("sleep 7100", timeout=2)
    assert result.timed_out
    assert result.exit_code in (124, 137)
    assert count(either, "^[s]leep 7100$") == 0


def test_a_process_ignoring_sigterm_is_killed(either: Sandbox) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
    result = either.exec(f'python3 -c "{script}"', timeout=2)
    assert result.timed_out
    assert count(either, "[S]IG_IGN") == 0


def test_a_background_job_holding_stdout_is_not_waited_for(either: Sandbox) -> None:
    result = either.exec("echo started; sleep 7101 & (sleep 0.3; yes tick) &", timeout=60)
    assert (result.exit_code, result.output, result.notice) == (0, "started\n", None)
    assert not result.timed_out
    # They keep running; what they print from now on is not this or any later command's.
    assert either.exec("sleep 1; echo next", 10).output == "next\n"
    assert count(either, "^[s]leep 7101$") == 1
    either.exec("pkill -f '^sleep 7101$'; pkill -x yes", 10)


def test_a_redirected_background_job_keeps_running(either: Sandbox) -> None:
    result = either.exec("sleep 7102 > /tmp/job.log 2>&1 & echo started", timeout=60)
    assert (result.output, result.notice) == ("started\n", None)
    assert count(either, "^[s]leep 7102$") == 1
    either.exec("pkill -f '^sleep 7102$'", 10)


def test_a_job_that_redirects_after_the_command_ended_keeps_running(either: Sandbox) -> None:
    """What a job not yet scheduled when the command ends looks like: it still holds the
    output, and redirects a moment later. It must not be killed for that moment."""
    command = "(sleep 1; exec sleep 7103 > /tmp/late.log 2>&1) & echo started"
    assert either.exec(command, timeout=60).output == "started\n"
    either.exec("sleep 2", 10)
    assert count(either, "^[s]leep 7103$") == 1
    either.exec("pkill -f '^sleep 7103$'", 10)


def test_redirected_background_jobs_survive_a_busy_machine(either: Sandbox) -> None:
    """The job is judged by no timing at all, so a machine too busy to run it before the
    command ends cannot get it killed (two busy loops here, on a two-core machine)."""
    # The Docker variant's container is on the host the local backend's `ps` sees, so each
    # backend sleeps for lengths of its own.
    first = 7300 if isinstance(either, DockerSandbox) else 7400
    lengths = f"{first // 100}[0-2][0-9]"
    busy = [subprocess.Popen(["python3", "-c", "while True: pass"]) for _ in range(2)]
    try:
        for number in range(30):
            command = f"sleep {first + number} > /tmp/job{number}.log 2>&1 & echo started"
            assert either.exec(command, timeout=60).output == "started\n"
        for loop in busy:
            loop.kill()
        running = either.exec(f"ps -eo args | grep -E '^[s]leep {lengths}$' | sort", 10).output
        assert running.split("\n")[:-1] == [f"sleep {first + n}" for n in range(30)]
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
        either.exec(f"pkill -f '^sleep {lengths}$'", 10)


def test_a_daemon_started_by_a_command_that_times_out(either: Sandbox) -> None:
    result = either.exec("setsid nohup sleep 7104 >/dev/null 2>&1 & sleep 100", timeout=2)
    assert result.timed_out
    assert count(either, "^[s]leep 7104$") == 0


def test_thousands_of_zombies_are_reaped(box: DockerSandbox) -> None:
    result = box.exec("for i in $(seq 2000); do (true &); done; echo done", timeout=60)
    assert result.output.endswith("done\n")
    zombies = box.exec("ps -eo stat | grep -c '^Z' || true", 10).output.strip()
    assert zombies == "0"


def test_kill_everything(box: DockerSandbox) -> None:
    result = box.exec("kill -9 -1", timeout=10)
    assert not result.timed_out
    assert result.notice is None  # the container survived: PID 1 is not the command user's


def test_network_egress_fails_fast(box: DockerSandbox) -> None:
    result = box.exec(
        "curl -sS -m 5 https://example.com; "
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), 3)\"",
        timeout=15,
    )
    assert not result.timed_out
    assert "Could not resolve host" in result.output
    assert "Network is unreachable" in result.output


def test_writes_to_system_paths_fail(box: DockerSandbox) -> None:
    result = box.exec(
        "touch /etc/x /usr/x; echo 1 > /proc/sysrq-trigger && echo SYSRQ; "
        "mount -t tmpfs x /mnt && echo MOUNTED",
        timeout=10,
    )
    assert result.output.count("Read-only file system") == 2
    assert "SYSRQ" not in result.output
    assert "MOUNTED" not in result.output
    assert "mount: /mnt: permission denied" in result.output


def test_no_docker_socket_and_no_capabilities(box: DockerSandbox) -> None:
    result = box.exec("ls /var/run/docker.sock; grep CapEff /proc/self/status", timeout=10)
    assert "No such file or directory" in result.output
    assert "CapEff:\t0000000000000000" in result.output


def test_a_memory_bomb_is_reported_as_out_of_memory(box: DockerSandbox) -> None:
    result = box.exec("python3 -c \"x = bytearray(2 * 1024**3); print('survived')\"", 60)
    assert result.exit_code == 137
    assert "\nsurvived\n" not in f"\n{result.output}"
    assert result.notice == "killed: out of memory (the sandbox's limit is 512 MiB)"


def test_a_disk_fill_stops_at_the_file_size_limit(box: DockerSandbox) -> None:
    result = box.exec("dd if=/dev/zero of=big.bin bs=1M count=500 2>&1", 60)
    assert result.exit_code == 153
    assert result.notice is not None
    assert "file size limit" in result.notice
    size = box.exec("stat -c %s big.bin; rm -f big.bin", 10).output.split()[0]
    assert int(size) <= 64 * 1024**2


def test_odd_output_is_cleaned(either: Sandbox) -> None:
    mixed = either.exec("printf '\\033[31mred\\033[0m 50%%\\r100%%\\ncaf\\xe9\\n'", 10)
    assert mixed.output == "100%\ncaf\ufffd\n"
    binary = either.exec("head -c 3000 /bin/ls", 10)
    assert binary.output.startswith("[binary output: 3000 bytes, sha256 ")


def test_programs_waiting_on_stdin_return_at_once(either: Sandbox) -> None:
    result = either.exec("cat; read x; echo \"read=$?\"; python3 -c 'input()' 2>&1 | tail -1", 30)
    assert not result.timed_out
    assert "read=1" in result.output
    assert "EOFError" in result.output


def test_git_without_a_message_and_pagers_do_not_hang(box: DockerSandbox) -> None:
    result = box.exec(
        "cd $(mktemp -d) && git init -q && echo x > f && git add f && "
        "git -c user.name=a -c user.email=a@b commit; echo rc=$?; "
        "git -c user.name=a -c user.email=a@b commit -qm first && git log && less f",
        timeout=30,
    )
    assert not result.timed_out
    assert "Aborting commit due to empty commit message" in result.output
    assert "first" in result.output
    assert result.output.rstrip().endswith("x")


def test_a_1_mb_heredoc(either: Sandbox) -> None:
    body = "\n".join(f"line {i} " + "z" * 80 for i in range(12_000))
    result = either.exec(f"cat > heredoc.txt <<'EOF'\n{body}\nEOF\nwc -c < heredoc.txt", 60)
    assert int(result.output.strip()) == len(body) + 1


def test_quoting_and_unicode_paths(either: Sandbox) -> None:
    result = either.exec(
        "echo \"it's \\\"q\\\" \\$HOME\"; printf '%s\\n' a\\ b; touch 'ü x.py'; ls 'ü x.py'", 10
    )
    assert result.output == 'it\'s "q" $HOME\na b\nü x.py\n'


def test_working_directory_and_variables_persist(either: Sandbox) -> None:
    either.exec("mkdir -p /tmp/place && cd /tmp/place && export FOO='a b' && BAR=local", 10)
    either.exec("exit 3", 10)
    result = either.exec('pwd; echo "$FOO|$BAR"', 10)
    assert result.output == "/tmp/place\na b|\n"
    either.exec(f"cd {either.workdir} && unset FOO", 10)
    assert either.exec('pwd; echo "[$FOO]"', 10).output == f"{either.workdir}\n[]\n"


def test_eight_concurrent_commands_do_not_mix(either: Sandbox) -> None:
    results: dict[int, str] = {}

    def run(index: int) -> None:
        command = f"for j in 1 2 3; do echo {index}-$j; sleep 0.1; done; exit {index}"
        result = either.exec(command, 30)
        results[index] = f"{result.output}|{result.exit_code}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: f"{i}-1\n{i}-2\n{i}-3\n|{i}" for i in range(8)}


def test_a_command_cannot_end_its_own_output_early(
    either: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 22, 14: the end marker was fixed, so a command could print it and hide what came
    # after from the user, the model and the session log. Now each command has its own secret
    # token, which reaches the runner on stdin: no argument or environment of any process the
    # command can read holds it.
    token = "5ec7e7" * 5 + "ab"
    monkeypatch.setattr("ponder.sandbox.scripts.end_token", lambda: token)
    result = either.exec(
        "printf 'before\\n\\000\\033PONDER_END\\000hidden-1\\n'; "
        "printf '\\000\\033PONDER_END_\\000hidden-2\\n'; "
        "for p in /proc/[0-9]*; do cat $p/cmdline $p/environ 2>/dev/null; done "
        "| tr '\\0' '\\n' | grep -c '5ec7e7[5]ec7e7' || true; echo after",
        30,
    )
    assert "hidden-1" in result.output
    assert "hidden-2" in result.output
    assert result.output.rstrip().endswith("0\nafter")  # nothing held the token
    assert token not in result.output


def test_a_process_whose_first_thread_exited_is_still_a_background_job(
    sandbox: DockerSandbox,
) -> None:
    # Its first thread's exit makes it look like a zombie (Z) to `ps`, while another thread
    # keeps writing: the session's checkpoints must still know a job runs. (A sandbox of its
    # own: this module's shared one runs other tests' jobs.)
    assert not sandbox.background_jobs()
    leader_exits = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=lambda: time.sleep(7301)).start()\n"
        "ctypes.CDLL(None).syscall(60, 0)\n"  # SYS_exit: this thread only
    )
    started = sandbox.exec(f"python3 -c '{leader_exits}' >/dev/null 2>&1 & echo $!", 10)
    pid = started.output.strip()
    states: list[str] = []
    deadline = time.monotonic() + 30
    while states[:1] != ["Zl"] and time.monotonic() < deadline:
        states = sandbox.exec(f"ps -o stat= -p {pid}", 10).output.split()
    assert states[:1] == ["Zl"]
    assert sandbox.background_jobs()


MEMORY_THIEF = r"""
import os, re, sys
def parent(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
pid, runner = os.getpid(), None
while pid > 1 and runner is None:
    pid = parent(pid)
    if b"PONDER_END" in open(f"/proc/{pid}/cmdline", "rb").read():
        runner = pid
found, read = [], 0
with open(f"/proc/{runner}/maps") as maps, open(f"/proc/{runner}/mem", "rb", 0) as memory:
    for line in maps:
        span, permissions = line.split()[:2]
        if "rw" not in permissions:
            continue
        low, high = (int(x, 16) for x in span.split("-"))
        try:
            memory.seek(low)
            data = memory.read(high - low)
        except OSError:
            continue
        read += len(data)
        found += re.findall(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", data)
print(f"read {read} bytes of the runner", flush=True)
for candidate in dict.fromkeys(found):
    sys.stdout.buffer.write(b"\x00\x1bPONDER_END_" + candidate + b"\x00")
sys.stdout.buffer.write(b"after the forged markers\n")
"""


def test_the_end_token_is_in_no_memory_while_the_command_runs(box: DockerSandbox) -> None:
    # The token once reached the runner before the command ran: reading the runner's memory
    # (a same-user process may, where the kernel does not forbid it) gave it away. It is sent
    # only once the command has ended.
    box.write_file("thief.py", MEMORY_THIEF.encode())
    result = box.exec(f"cd {box.workdir} && python3 thief.py 2>&1; rm thief.py", 30)
    if "read 0 bytes" in result.output or "Permission denied" in result.output:
        pytest.skip("this kernel does not let a process read its parent's memory")
    assert "after the forged markers" in result.output
