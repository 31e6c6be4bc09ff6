"""Settings refuse what they cannot use with tbledger's own `ConfigurationError`.

A value out of range or of the wrong type, from a keyword or from the environment, and an unknown
keyword (a typo that would otherwise leave a default in place) are refused when the settings are
built, with every field at fault and its environment variables named, and pydantic's error as the
cause. The value itself is never repeated: a database URL may carry a password.
"""

from __future__ import annotations

import pydantic
import pytest

from tbledger.config import Settings
from tbledger.errors import ConfigurationError, TbledgerError
from tbledger.service import LedgerService

# Every variable the settings read, so that the machine's own environment cannot leak in.
_ENV = [
    "TIGERBEETLE_ADDRESSES",
    "TIGERBEETLE_CLUSTER_ID",
    "TB_REQUEST_TIMEOUT",
    "TB_RETRY_DELAY",
    *(f"TBLEDGER_{name.upper()}" for name in Settings.model_fields),
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def refusal(**values: object) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        Settings(**values)  # type: ignore[arg-type]
    assert isinstance(caught.value, TbledgerError)
    assert isinstance(caught.value.__cause__, pydantic.ValidationError)
    return caught.value


def test_good_settings_are_built_as_before() -> None:
    settings = Settings(request_timeout_ms=250, migrate=False, fee_payer="merchant")
    assert (settings.request_timeout_ms, settings.migrate, settings.fee_payer) == (
        250,
        False,
        "merchant",
    )
    assert Settings().database_url == "sqlite:///tbledger.db"


def test_an_unknown_keyword_is_refused_not_ignored() -> None:
    message = str(refusal(bogus=True))
    assert "'bogus' is not a setting" in message


def test_a_misspelt_keyword_is_refused_with_the_name_it_resembles() -> None:
    message = str(refusal(request_timout_ms=100))
    assert "'request_timout_ms' is not a setting" in message
    assert "did you mean 'request_timeout_ms'?" in message


def test_a_bad_value_names_the_field_and_its_variables_but_not_the_value() -> None:
    message = str(refusal(request_timeout_ms=-987_654))
    assert message.startswith("invalid settings: request_timeout_ms ")
    assert "TB_REQUEST_TIMEOUT" in message and "TBLEDGER_REQUEST_TIMEOUT_MS" in message
    assert "greater than 0" in message
    assert "987" not in message


def test_every_field_at_fault_is_named() -> None:
    message = str(refusal(fee_payer="nobody", retry_attempts_max=0, database_url=5))
    for name in ("fee_payer", "retry_attempts_max", "database_url"):
        assert name in message, (name, message)


def test_a_refused_text_value_is_not_repeated() -> None:
    message = str(refusal(fee_payer="postgresql://app:hunter2@db/ledger"))
    assert "hunter2" not in message and "fee_payer" in message


def test_bad_values_in_the_environment_are_refused_by_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TB_REQUEST_TIMEOUT", "soon")
    monkeypatch.setenv("TBLEDGER_MIGRATE", "maybe")
    monkeypatch.setenv("TBLEDGER_RETRY_DELAY_MS", "0")
    message = str(refusal())
    assert "request_timeout_ms (TB_REQUEST_TIMEOUT or TBLEDGER_REQUEST_TIMEOUT_MS)" in message
    assert "migrate (TBLEDGER_MIGRATE)" in message
    assert "retry_delay_ms (TB_RETRY_DELAY or TBLEDGER_RETRY_DELAY_MS)" in message
    assert "soon" not in message and "maybe" not in message


def test_good_values_in_the_environment_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TB_REQUEST_TIMEOUT", "1234")
    monkeypatch.setenv("TBLEDGER_AUDIT", "false")
    settings = Settings()
    assert (settings.request_timeout_ms, settings.audit) == (1234, False)


def test_a_service_built_from_keywords_refuses_a_typo() -> None:
    with pytest.raises(ConfigurationError, match="'request_timout_ms' is not a setting"):
        LedgerService(engine_url="memory://", request_timout_ms=100)


def test_a_configuration_error_is_still_a_value_error() -> None:
    # Callers that caught pydantic's ValidationError (a ValueError) keep catching it.
    with pytest.raises(ValueError, match="invalid settings"):
        Settings(retry_attempts_max=0)
