"""Settings come from defaults, the file, PONDER_* variables and flags, flags winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.app.config import ConfigError, load_config


def test_layers_and_tables_merge_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'model = "openai:http://127.0.0.1:8000/v1#k2"\nmax_steps = 50\n'
        "[sampling]\ntemperature = 0.6\ntop_p = 0.9\n"
        '[llama]\nctx_size = 8192\noverride_tensor = ["exps=CPU"]\n'
    )
    monkeypatch.setenv("PONDER_CONFIG", str(config))
    monkeypatch.setenv("PONDER_MAX_STEPS", "80")
    loaded = load_config(
        {"sampling": {"temperature": 0.2, "top_p": None}, "llama": {"n_cpu_moe": 4}}
    )
    assert loaded.model == "openai:http://127.0.0.1:8000/v1#k2"
    assert loaded.max_steps == 80
    assert (loaded.sampling.temperature, loaded.sampling.top_p) == (0.2, 0.9)
    assert loaded.sampling.generation().min_p == 0.01
    options = loaded.llama.options()
    assert (options.ctx_size, options.n_cpu_moe, options.override_tensor) == (
        8192,
        4,
        ("exps=CPU",),
    )


def test_an_unknown_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[llama]\ncontext = 4096\n")
    monkeypatch.setenv("PONDER_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"invalid configuration in .*config.toml: llama.context"):
        load_config()
