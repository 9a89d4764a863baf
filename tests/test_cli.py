"""The installed ``ponder`` command, run the way a user runs it."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import paramiko
import pytest
from conftest import PONDER
from docker_hosts import ssh_docker_host
from k2text import completion, write_script


def ponder(
    *args: str, env: dict[str, str], stdin: str = "", cwd: Path | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def test_without_a_model_it_says_how_to_configure_one(user_env: dict[str, str]) -> None:
    result = ponder(env=user_env)
    assert result.returncode == 2
    assert result.stderr.startswith("ponder: no model given; ponder needs one.")
    assert "PONDER_MODEL" in result.stderr
    assert f"{user_env['XDG_CONFIG_HOME']}/ponder/config.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help(user_env: dict[str, str]) -> None:
    assert ponder("--version", env=user_env).stdout.startswith("ponder 0.")
    help_text = ponder("--help", env=user_env).stdout
    assert "--model" in help_text
    assert "ponder demo" in help_text
    assert "ponder completion" in " ".join(help_text.split())  # every command is named
    # A server takes what loads its model, not what a run decides (approvals, budgets, ...).
    serving = ponder("serve", "--help", env=user_env).stdout
    assert "--ctx-size" in serving
    assert "--approval" not in serving
    assert "--max-steps" not in serving
    refused = ponder("serve", "--approval", "ask", "--status", env=user_env)
    assert refused.returncode == 2
    # Issue 24, 19: a subcommand's --help is its own, not its parent's.
    listing = ponder("mcp", "list", "--help", env=user_env).stdout
    assert listing.startswith("usage: ponder mcp list")
    assert "--yes" not in listing  # trust's option


def test_a_broken_config_file_is_named(user_env: dict[str, str]) -> None:
    config = Path(user_env["XDG_CONFIG_HOME"]) / "ponder" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("max_steps = 'many'\n")
    result = ponder(env=user_env)
    assert result.returncode == 2
    assert f"invalid configuration in {config}: max_steps" in result.stderr
    config.write_text("model = [unclosed\n")
    result = ponder(env=user_env)
    assert result.returncode == 2
    assert f"cannot read {config}" in result.stderr


def test_flags_beat_the_environment(user_env: dict[str, str], tmp_path: Path) -> None:
    result = ponder(
        "--model", f"scripted:{tmp_path / 'missing.jsonl'}", env={**user_env, "PONDER_MODEL": "x:y"}
    )
    assert result.returncode == 2
    assert "scripted model file not found" in result.stderr


def test_no_docker_engine_is_a_clear_error(user_env: dict[str, str]) -> None:
    env = {**user_env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = ponder("demo", "--plain", env=env)
    assert result.returncode == 2
    assert "cannot reach a Docker engine at unix:///nonexistent/docker.sock" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_docker_socket_this_user_may_not_use_is_a_clear_error(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    engine = socket.socket(socket.AF_UNIX)  # stands in for the engine; never gets that far
    engine.bind(str(tmp_path / "docker.sock"))
    engine.listen()
    (tmp_path / "docker.sock").chmod(0)
    command = [PONDER, "sandbox", "exec", "--", "true"]
    if os.geteuid() == 0:  # root reads anything: run it without capabilities, like a user
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *command]
    env = {**user_env, "DOCKER_HOST": f"unix://{tmp_path}/docker.sock"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    engine.close()
    assert result.returncode == 2
    assert f"this user may not use the Docker engine at unix://{tmp_path}/docker.sock" in (
        result.stderr
    )
    assert "sudo usermod -aG docker $USER" in result.stderr


def test_an_ssh_docker_host_that_fails_is_a_clear_error(user_env: dict[str, str]) -> None:
    home = Path(user_env["HOME"])
    with ssh_docker_host(home) as host:
        known_hosts = home / ".ssh" / "known_hosts"
        trusted = known_hosts.read_text()
        known_hosts.unlink()
        unknown = ponder("sandbox", "exec", "--", "true", env={**user_env, "DOCKER_HOST": host})
        known_hosts.write_text(trusted)
        paramiko.RSAKey.generate(2048).write_private_key_file(str(home / ".ssh" / "id_rsa"))
        wrong_key = ponder("sandbox", "exec", "--", "true", env={**user_env, "DOCKER_HOST": host})
    gone = ponder("sandbox", "exec", "--", "true", env={**user_env, "DOCKER_HOST": host})
    for result in unknown, wrong_key, gone:
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert f"docker -H {host} version" in result.stderr  # the command to check it with
    assert "not found in known_hosts" in unknown.stderr
    assert "Authentication failed" in wrong_key.stderr
    assert f"cannot reach a Docker engine at {host} (Unable to connect to port" in gone.stderr


@pytest.mark.usefixtures("sandbox_image")
def test_demo_in_line_mode(user_env: dict[str, str]) -> None:
    result = ponder("demo", "--plain", env=user_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # The reasoning, each tool call with its real output, then the diff.
    assert "thinking: The user says the test suite fails." in out
    assert "▶ bash $ python3 -m pytest -q" in out
    failing = out.index("1 failed, 2 passed")
    passing = out.index("3 passed")
    assert failing < passing
    assert "-        return ordered[middle]\n+        return (ordered[middle - 1]" in out
    fixed = Path(out.split("The fixed copy is at ")[1].strip())
    assert "(ordered[middle - 1] + ordered[middle]) / 2" in (fixed / "stats.py").read_text()


def test_a_reader_that_leaves_early_gets_no_traceback(user_env: dict[str, str]) -> None:
    """`ponder sessions | head -1` and friends: ponder stops quietly, as `yes | head` does."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before ponder writes a byte
    result = subprocess.run(
        [PONDER, "sessions"], env=user_env, stdout=write_end, stderr=subprocess.PIPE, text=True
    )
    os.close(write_end)
    assert result.returncode == 128 + signal.SIGPIPE
    assert result.stderr == ""


@pytest.mark.usefixtures("sandbox_image")
def test_sandbox_exec_passes_its_words_exactly(user_env: dict[str, str], workspace: Path) -> None:
    def exec_(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PONDER, "sandbox", "exec", "--", *words], env=user_env, cwd=workspace,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    assert exec_("python3", "-c", 'print("a b")').stdout == "a b\n"
    both = exec_("sh", "-c", "echo out; echo err >&2; exit 3")
    assert (both.returncode, both.stdout) == (3, "out\nerr\n")  # the sandbox merges stderr
    assert exec_("echo", "$HOME").stdout == "$HOME\n"
    assert exec_("echo a | tr a b").stdout == "b\n"  # one word: a shell command line


def test_a_mistyped_command_is_not_a_task(user_env: dict[str, str], tmp_path: Path) -> None:
    typo = ponder("sesions", env=user_env, cwd=tmp_path)
    assert typo.returncode == 2
    assert "'sesions' is not a command; did you mean `ponder sessions`?" in typo.stderr
    assert "did you mean `ponder swebench`" in ponder("swebnch", env=user_env).stderr
    script = write_script(tmp_path / "s.jsonl", completion("Ok.", content="done"))
    user_env["PONDER_SANDBOX"] = "local"  # how the words are read, not the sandbox
    for task in ("hello", "fix the sessions list"):  # far from any command, or several words
        ran = ponder("--plain", "--model", f"scripted:{script}", task, env=user_env, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert "done" in ran.stdout


def test_every_command_has_examples_and_every_argument_a_help_text() -> None:
    from ponder.app.commands.completion import command_parsers

    for path, parser in command_parsers().items():
        epilog = parser.epilog or ""
        assert epilog.startswith("examples:\n  "), path
        assert "ponder" in epilog, path
        for action in parser._actions:
            assert action.help or action.dest == "help", f"ponder {path}: {action.dest}"


def test_shell_completion_for_bash_zsh_and_fish(user_env: dict[str, str], tmp_path: Path) -> None:
    scripts = {}
    for shell in ("bash", "zsh", "fish"):
        made = ponder("completion", shell, env=user_env)
        assert made.returncode == 0, made.stderr
        scripts[shell] = tmp_path / f"ponder.{shell}"
        scripts[shell].write_text(made.stdout)

    def bash_completes(line: str) -> str:
        script = (
            f"source {scripts['bash']}; read -ra COMP_WORDS <<< {shlex.quote(line)}; "
            f'[ "{line[-1]}" = " " ] && COMP_WORDS+=(""); '
            "COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _ponder; echo ${COMPREPLY[@]}"
        )
        return subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert bash_completes("ponder sand") == "sandbox"
    assert bash_completes("ponder sandbox ").startswith("build cleanup exec shell")
    assert bash_completes("ponder swebench eval --ru") == "--run-id"
    assert bash_completes("ponder exec --out") == "--output-last-message --output-schema"
    assert bash_completes("ponder fix the bu") == ""  # a task: the shell completes files
    for shell in ("zsh", "fish"):
        if shutil.which(shell):  # CI installs both; a machine without one checks the rest
            subprocess.run([shell, "-n", str(scripts[shell])], check=True)
    if shutil.which("fish"):
        fish = subprocess.run(
            ["fish", "-c", f"source {scripts['fish']}; complete -C'ponder swe'"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert fish.stdout.startswith("swebench\t")
