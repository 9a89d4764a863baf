"""Settings come from defaults, the file, PONDER_* variables and flags, flags winning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import PONDER

from ponder.app.config import ConfigError, load_config


def test_layers_and_tables_merge_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'model = "openai:http://127.0.0.1:8000/v1#k2"\nmax_steps = 50\n'
        "[sampling]\ntemperature = 0.6\ntop_p = 0.9\n"
        '[llama]\ncontext_size = 8192\noverride_tensor = ["exps=CPU"]\nkv_disk = "512MiB"\n'
    )
    monkeypatch.setenv("PONDER_CONFIG", str(config))
    monkeypatch.setenv("PONDER_MAX_STEPS", "80")
    loaded = load_config(
        {"sampling": {"temperature": 0.2, "top_p": None}, "llama": {"n_cpu_moe": 4}}
    )
    assert loaded.session.model == "openai:http://127.0.0.1:8000/v1#k2"
    assert loaded.budgets.max_steps == 80
    assert (loaded.sampling.temperature, loaded.sampling.top_p) == (0.2, 0.9)
    assert loaded.sampling.min_p == 0.01
    options = loaded.llama
    assert (options.context_size, options.n_cpu_moe, options.override_tensor) == (
        8192,
        4,
        ("exps=CPU",),
    )
    assert options.kv_disk == 512 * 2**20  # one size parser, one convention


def test_an_unknown_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[llama]\nctx_size = 4096\n")  # the name before context_size
    monkeypatch.setenv("PONDER_CONFIG", str(config))
    with pytest.raises(
        ConfigError, match=r"unknown key llama.ctx_size \(did you mean context_size\?\)"
    ):
        load_config()


@pytest.mark.parametrize(
    ("flags", "in_file", "said"),
    [
        (["--max-steps", "0"], "", "max_steps: Input should be greater than or equal to 1"),
        (["--max-tokens", "-1"], "", "max_tokens: Input should be greater than or equal to 1"),
        (["--time-limit", "-1"], "", "time_limit: Input should be greater than 0"),
        (["--temp", "-3"], "", "sampling.temperature: Input should be greater than or equal to 0"),
        ([], "max_steps = -1\n", "max_steps: Input should be greater than or equal to 1"),
        ([], "max_step = 3\n", "unknown key max_step (did you mean max_steps?)"),
        ([], "[sampling]\ntemprature = 1\n", "unknown key sampling.temprature (did you mean"),
    ],
)
def test_bad_values_are_usage_errors(
    flags: list[str], in_file: str, said: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(in_file)
    ran = subprocess.run(
        [PONDER, "exec", "--model", "scripted:/nowhere.jsonl", *flags, "hi"],
        env=dict(user_env, PONDER_CONFIG=str(config)), cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 2
    assert said in ran.stderr


def test_a_config_file_named_but_missing_is_a_usage_error(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    ran = subprocess.run(
        [PONDER, "exec", "--model", "scripted:/nowhere.jsonl", "hi"],
        env=dict(user_env, PONDER_CONFIG="/nope.toml"), cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "PONDER_CONFIG names /nope.toml, which does not exist" in ran.stderr
