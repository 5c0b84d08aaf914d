"""Configuration precedence and error messages."""

from __future__ import annotations

import pytest

from flashalpha.config import Config, ConfigError, load_config


def test_defaults():
    config = load_config(environ={})
    assert config == Config()
    assert config.feed.kind == "synthetic" and config.http.port == 8000
    assert str(config.journal_path).endswith("flashalpha/journal")


def test_file_then_environment_then_overrides(tmp_path):
    path = tmp_path / "flashalpha.toml"
    path.write_text('data_dir = "/srv/fa"\n[state]\ncapacity = 1000\n[feed]\nseed = 4\n')
    environ = {"FLASHALPHA_STATE_CAPACITY": "2000", "FLASHALPHA_FEED_UNDERLYINGS": "SPY, QQQ"}
    config = load_config(path, {"feed": {"seed": 9}}, environ=environ)
    assert config.data_dir == "/srv/fa"
    assert config.state.capacity == 2000
    assert config.feed.underlyings == ("SPY", "QQQ")
    assert config.feed.seed == 9


def test_errors_name_the_value(tmp_path):
    with pytest.raises(ConfigError, match="capacity"):
        load_config(environ={"FLASHALPHA_STATE_CAPACITY": "lots"})
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[state\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="sometimes"):
        load_config(overrides={"journal": {"fsync": "sometimes"}}, environ={})
    with pytest.raises(ConfigError, match="colour"):
        load_config(overrides={"state": {"colour": 1}}, environ={})
