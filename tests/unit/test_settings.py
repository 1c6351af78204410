from pathlib import Path

import pytest

from app.settings import REPO_ROOT, Settings, SettingsError, describe


def test_defaults_run_on_the_embedded_local_stack() -> None:
    settings = Settings.from_env({})

    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.processing_guarantee == "exactly_once"
    assert settings.policy_path.is_file()


def test_variables_override_defaults_with_their_types() -> None:
    settings = Settings.from_env(
        {"TACT_WEB_PORT": "7000", "TACT_COMMIT_INTERVAL": "0.5", "TACT_DATA_DIR": "/x"}
    )

    assert settings.web_port == 7000
    assert settings.commit_interval_s == 0.5
    assert settings.data_dir == Path("/x")


def test_every_bad_variable_is_named_in_one_error() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"TACT_WEB_PORT": "web", "TACT_PARTITIONS": "many"})

    assert "TACT_WEB_PORT" in str(raised.value)
    assert "TACT_PARTITIONS" in str(raised.value)


def test_an_unknown_guarantee_is_refused() -> None:
    with pytest.raises(SettingsError, match="TACT_PROCESSING_GUARANTEE"):
        Settings.from_env({"TACT_PROCESSING_GUARANTEE": "at_most_once"})


def test_the_api_token_never_shows_in_the_settings_repr() -> None:
    settings = Settings.from_env({"TACT_API_TOKEN": "s3cret-token"})

    assert "s3cret-token" not in repr(settings)


def test_the_readme_documents_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()

    missing = [env for env, _, _ in describe() if f"`{env}`" not in readme]

    assert missing == []


def test_an_unknown_log_level_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError, match="TACT_LOG_LEVEL"):
        Settings.from_env({"TACT_LOG_LEVEL": "loud"})


def test_a_dead_letter_limit_that_would_not_fit_a_kafka_record_is_refused() -> None:
    with pytest.raises(SettingsError, match="TACT_DEAD_LETTER_KEEP_BYTES"):
        Settings.from_env({"TACT_DEAD_LETTER_KEEP_BYTES": str(2 * 1024 * 1024)})
