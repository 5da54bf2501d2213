"""The settings chain: command line > FACTFLOW_* variables > TOML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from factflow_storage.errors import ConfigError
from factflow_storage.registry import DEFAULT_STORAGE_URI
from factflow_storage.settings import FIELDS, load_settings


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No ./factflow.toml and no ~/.config/factflow/config.toml unless a test writes one."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home, work


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


FULL_TOML = """
storage_uri = "file:///from/file"
api_url = "http://file:8080"
api_token = "file-token"

[minio]
endpoint = "file-host:9000"
access_key = "file-access"
secret_key = "file-secret"
secure = true
region = "eu-west-1"
"""


def test_defaults_when_nothing_is_set():
    settings = load_settings(env={})
    assert settings.storage_uri == DEFAULT_STORAGE_URI == "file://./output/storage"
    assert settings.api_url is None
    assert settings.config_file is None
    assert {row["name"]: row["source"] for row in settings.shown()} == {f.name: "default" for f in FIELDS}


def test_every_setting_comes_from_a_named_file(tmp_path):
    path = write_toml(tmp_path / "conf.toml", FULL_TOML)
    settings = load_settings(config=str(path), env={})
    assert settings.config_file == path
    assert settings.storage_uri == "file:///from/file"
    assert settings.api_url == "http://file:8080"
    assert settings.api_token == "file-token"
    assert settings.minio_endpoint == "file-host:9000"
    assert settings.minio_access_key == "file-access"
    assert settings.minio_secret_key == "file-secret"
    assert settings.minio_secure is True
    assert settings.minio_region == "eu-west-1"
    assert settings.source("minio_endpoint") == f"config {path}"


def test_environment_beats_the_file_and_the_command_line_beats_both(tmp_path):
    path = write_toml(tmp_path / "conf.toml", FULL_TOML)
    env = {"FACTFLOW_STORAGE_URI": "file:///from/env", "FACTFLOW_MINIO_ENDPOINT": "env-host:9000"}
    settings = load_settings({"storage_uri": "file:///from/flag", "api_url": None}, config=str(path), env=env)
    assert (settings.storage_uri, settings.source("storage_uri")) == ("file:///from/flag", "command line")
    assert (settings.minio_endpoint, settings.source("minio_endpoint")) == (
        "env-host:9000", "env FACTFLOW_MINIO_ENDPOINT")
    assert (settings.api_url, settings.source("api_url")) == ("http://file:8080", f"config {path}")
    assert settings.source("minio_region") == f"config {path}"


def test_an_empty_variable_counts_as_unset(tmp_path):
    path = write_toml(tmp_path / "conf.toml", 'storage_uri = "file:///from/file"\n')
    settings = load_settings(config=str(path), env={"FACTFLOW_STORAGE_URI": ""})
    assert settings.storage_uri == "file:///from/file"


def test_config_file_search_order(tmp_path, isolated):
    home, work = isolated
    user_file = write_toml(home / ".config/factflow/config.toml", 'storage_uri = "file:///user"\n')
    assert load_settings(env={}).config_file == user_file
    assert load_settings(env={}).storage_uri == "file:///user"

    local_file = write_toml(work / "factflow.toml", 'storage_uri = "file:///local"\n')
    assert load_settings(env={}).storage_uri == "file:///local"
    assert load_settings(env={}).config_file == Path("factflow.toml")
    assert local_file.exists()

    env_file = write_toml(tmp_path / "env.toml", 'storage_uri = "file:///env-named"\n')
    assert load_settings(env={"FACTFLOW_CONFIG": str(env_file)}).storage_uri == "file:///env-named"

    flag_file = write_toml(tmp_path / "flag.toml", 'storage_uri = "file:///flag-named"\n')
    chosen = load_settings(config=str(flag_file), env={"FACTFLOW_CONFIG": str(env_file)})
    assert chosen.storage_uri == "file:///flag-named"
    assert chosen.source("storage_uri") == f"config {flag_file}"


def test_only_one_file_is_read(isolated):
    home, work = isolated
    write_toml(home / ".config/factflow/config.toml", 'api_url = "http://user"\n')
    write_toml(work / "factflow.toml", 'storage_uri = "file:///local"\n')
    settings = load_settings(env={})
    assert settings.storage_uri == "file:///local"
    assert settings.api_url is None


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_named_file_must_exist(tmp_path, how):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        if how == "flag":
            load_settings(config=str(missing), env={})
        else:
            load_settings(env={"FACTFLOW_CONFIG": str(missing)})


def test_invalid_toml_names_the_file(tmp_path):
    path = write_toml(tmp_path / "broken.toml", "storage_uri = \n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_settings(config=str(path), env={})


def test_secrets_are_masked_when_shown(tmp_path):
    path = write_toml(tmp_path / "conf.toml", FULL_TOML)
    shown = {row["name"]: row["value"] for row in load_settings(config=str(path), env={}).shown()}
    assert shown["api_token"] == "****"
    assert shown["minio_secret_key"] == "****"
    assert shown["minio_access_key"] == "file-access"
    assert "file-secret" not in repr(shown) and "file-token" not in repr(shown)


def test_provider_options_for_the_filesystem_are_empty():
    assert load_settings(env={"FACTFLOW_MINIO_ENDPOINT": "h:1"}).provider_options() == {}


@pytest.mark.parametrize("scheme", ["minio", "s3"])
@pytest.mark.parametrize("text, expected", [("true", True), ("1", True), ("yes", True), ("false", False),
                                            ("0", False), ("off", False)])
def test_provider_options_for_s3_parse_booleans(scheme, text, expected):
    env = {"FACTFLOW_STORAGE_URI": f"{scheme}://bucket", "FACTFLOW_MINIO_ENDPOINT": "127.0.0.1:9000",
           "FACTFLOW_MINIO_ACCESS_KEY": "ak", "FACTFLOW_MINIO_SECRET_KEY": "sk", "FACTFLOW_MINIO_SECURE": text}
    options = load_settings(env=env).provider_options()
    assert options["endpoint"] == "127.0.0.1:9000"
    assert options["access_key"] == "ak" and options["secret_key"] == "sk"
    assert options["secure"] is expected


def test_secure_left_unset_is_none_so_the_provider_decides():
    env = {"FACTFLOW_STORAGE_URI": "minio://bucket"}
    assert load_settings(env=env).provider_options()["secure"] is None


def test_a_bad_boolean_is_a_config_error():
    env = {"FACTFLOW_STORAGE_URI": "minio://bucket", "FACTFLOW_MINIO_SECURE": "maybe"}
    with pytest.raises(ConfigError, match="maybe"):
        load_settings(env=env).provider_options()


@pytest.mark.parametrize("text, seconds", [("3600", 3600), ("30m", 1800), ("2h", 7200), ("1d", 86400),
                                           ("1.5h", 5400), ("500ms", 0.5)])
def test_archive_ttl_takes_the_duration_grammar(text, seconds):
    from factflow_storage.archive.service import ttl_from_env

    assert ttl_from_env({"FACTFLOW_ARCHIVE_TTL": text}) == seconds


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1e3", "5 parsecs"])
def test_archive_ttl_refuses_what_is_not_a_positive_duration(text):
    from factflow_storage.archive.service import ttl_from_env
    from factflow_storage.errors import ConfigError

    with pytest.raises(ConfigError, match="FACTFLOW_ARCHIVE_TTL must be a positive duration"):
        ttl_from_env({"FACTFLOW_ARCHIVE_TTL": text})


def test_archive_ttl_is_a_setting_config_show_lists_with_its_source(tmp_path):
    from click.testing import CliRunner

    from factflow_storage.cli.main import cli

    path = write_toml(tmp_path / "conf.toml", '[archive]\nttl = "2h"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "-o", "json", "config", "show"], env={
        "FACTFLOW_ARCHIVE_TTL": None, "FACTFLOW_CONFIG": None})
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in __import__("orjson").loads(result.stdout)["settings"]}
    assert rows["archive_ttl"]["value"] == "2h"
    assert rows["archive_ttl"]["source"] == f"config {path}"
    assert load_settings(config=str(path), env={}).archive_ttl_seconds() == 7200
    assert load_settings(config=str(path), env={"FACTFLOW_ARCHIVE_TTL": "90s"}).archive_ttl_seconds() == 90



EVERY_KIND_TOML = """
storage_uri = "file:///from/file"
api_token = "file-token"
api_cors_origins = ["http://a:1"]
[minio]
endpoint = "file-host:9000"
access_key = "file-access"
secret_key = "file-secret"
secure = true
region = "eu-west-1"
[archive]
ttl = "2h"
max_jobs = 3
idle = 30
[copy]
destinations = {prod = "minio://prod"}
"""


def test_config_show_keeps_each_value_as_its_source_gave_it(tmp_path):
    # TOML numbers, booleans, arrays and tables stay what they are; variables stay text.
    from click.testing import CliRunner

    from factflow_storage.cli.main import cli

    path = write_toml(tmp_path / "conf.toml", EVERY_KIND_TOML)
    env = {"FACTFLOW_CONFIG": None, "FACTFLOW_MINIO_REGION": "us-x", "FACTFLOW_ARCHIVE_MAX_BYTES": "5G",
           **{field.env: None for field in FIELDS if field.env not in ("FACTFLOW_MINIO_REGION",
                                                                        "FACTFLOW_ARCHIVE_MAX_BYTES")}}
    result = CliRunner().invoke(cli, ["--config", str(path), "-o", "json", "config", "show"], env=env)
    assert result.exit_code == 0, result.output
    config = f"config {path}"
    assert __import__("orjson").loads(result.stdout) == {"config_file": str(path), "settings": [
        {"name": "storage_uri", "value": "file:///from/file", "source": config},
        {"name": "api_url", "value": None, "source": "default"},
        {"name": "api_token", "value": "****", "source": config},
        {"name": "api_cors_origins", "value": ["http://a:1"], "source": config},
        {"name": "archive_max_jobs", "value": 3, "source": config},
        {"name": "archive_max_bytes", "value": "5G", "source": "env FACTFLOW_ARCHIVE_MAX_BYTES"},
        {"name": "archive_idle", "value": 30, "source": config},
        {"name": "minio_endpoint", "value": "file-host:9000", "source": config},
        {"name": "minio_access_key", "value": "file-access", "source": config},
        {"name": "minio_secret_key", "value": "****", "source": config},
        {"name": "minio_secure", "value": True, "source": config},
        {"name": "minio_region", "value": "us-x", "source": "env FACTFLOW_MINIO_REGION"},
        {"name": "minio_create_bucket", "value": None, "source": "default"},
        {"name": "archive_ttl", "value": "2h", "source": config},
        {"name": "copy_destinations", "value": {"prod": "minio://prod"}, "source": config},
    ]}


def test_settings_are_frozen_and_typed(tmp_path):
    import dataclasses

    settings = load_settings(env={"FACTFLOW_MINIO_REGION": "r1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.minio_region = "r2"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.minio_regoin  # type: ignore[attr-defined]  # noqa: B018
    assert {f.name for f in dataclasses.fields(settings)} == {f.name for f in FIELDS} | {"config_file", "sources"}


def test_a_toml_value_of_the_wrong_kind_is_a_config_error(tmp_path):
    path = write_toml(tmp_path / "conf.toml", "[minio]\nregion = 5\n")
    with pytest.raises(ConfigError, match=r"conf.toml: minio.region must be text, not 5"):
        load_settings(config=str(path), env={})
