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


def test_curve_settings_come_from_the_environment_and_go_in_pairs():
    config = load_config(
        environ={
            "FLASHALPHA_COMPUTE_CURVE_SECRET_KEY": "/etc/flashalpha/curve/server.key_secret",
            "FLASHALPHA_COMPUTE_CURVE_AUTHORIZED_KEYS": "/etc/flashalpha/curve/authorized",
        }
    )
    assert config.compute.curve
    assert config.compute.curve_authorized_keys == "/etc/flashalpha/curve/authorized"
    assert not load_config(environ={}).compute.curve
    for given, missing in (
        ("CURVE_SECRET_KEY", "curve_authorized_keys"),
        ("CURVE_AUTHORIZED_KEYS", "curve_secret_key"),
    ):
        with pytest.raises(ConfigError, match=f"compute.{missing} is not"):
            load_config(environ={f"FLASHALPHA_COMPUTE_{given}": "/x"})
