"""`tailored keys create|list|revoke` and `tailored models list|promote|rollback`, and
`tailored serve` refusing open access beyond 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.errors import TailoredError
from tailored.jobs import train_model
from tailored.schema import Event
from tailored.serving import OpenAccessRefusedError, user_tokens
from tailored.settings import Settings
from tailored.store import open_store

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("TAILORED_STORE_URL", "TAILORED_MODEL_DIR", "TAILORED_HOST"):
        monkeypatch.delenv(name, raising=False)
    return f"sqlite:///{tmp_path / 'tailored.db'}"


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_key_is_shown_once_stored_hashed_listed_and_revoked(url: str) -> None:
    output = _ok(["keys", "create", "--name", "backend", "--scope", "write", "--store", url])

    [secret] = [line for line in output.splitlines() if line.startswith("tk_")]
    store = open_store(url)
    key = store.keys.verify(secret)
    assert key is not None and key.scopes == ("write",) and key.name == "backend"
    listed = _ok(["keys", "list", "--store", url])
    assert key.key_id in listed and "backend" in listed and secret not in listed
    assert secret not in Path(url.removeprefix("sqlite:///")).read_bytes().decode("latin-1")

    _ok(["keys", "revoke", key.key_id, "--store", url])

    assert store.keys.verify(secret) is None
    store.close()


def test_a_user_token_is_issued_with_the_configured_secret(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s" * 32
    monkeypatch.setenv("TAILORED_USER_TOKEN_SECRET", secret)

    output = _ok(["keys", "user-token", "u42", "--ttl", "60", "--store", url])

    [token] = [line for line in output.splitlines() if line.startswith("tu1.")]
    assert user_tokens.verify(secret, token) == "u42"


def test_without_a_secret_no_user_token_is_issued(url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILORED_USER_TOKEN_SECRET", raising=False)

    result = runner.invoke(app, ["keys", "user-token", "u42", "--store", url])

    assert result.exit_code != 0 and "user_token_secret" in result.output


def test_an_unknown_scope_is_refused(url: str) -> None:
    result = runner.invoke(app, ["keys", "create", "--name", "x", "--scope", "root",
                                 "--store", url])

    assert result.exit_code != 0
    assert isinstance(result.exception, TailoredError)
    assert "root" in str(result.exception)


def test_models_list_promote_and_roll_back(url: str, tmp_path: Path) -> None:
    store = open_store(url)
    store.events.add([Event(user_id=f"u{u}", item_id=f"i{(u + j) % 7}")
                      for u in range(20) for j in range(4)])
    settings = Settings(store_url=url, model_dir=tmp_path / "models")
    for name in ("popular", "item_knn"):
        train_model(store, settings, name, validate=False)  # versions 1 and 2, 2 active

    listed = _ok(["models", "list", "--store", url])
    assert "popular" in listed and "item_knn" in listed
    assert "rolled back from version 2 to 1" in _ok(["models", "rollback", "--store", url])
    assert store.models.active().version == 1  # type: ignore[union-attr]
    result = runner.invoke(app, ["models", "rollback", "--store", url])
    assert "no earlier version" in str(result.exception)
    _ok(["models", "promote", "2", "--store", url])
    assert store.models.active().version == 2  # type: ignore[union-attr]
    broken = store.models.register("als", str(tmp_path / "missing"))
    result = runner.invoke(app, ["models", "promote", str(broken.version), "--store", url])
    assert "cannot be loaded" in str(result.exception)
    assert store.models.active().version == 2  # type: ignore[union-attr]
    store.close()


def test_serve_beyond_loopback_without_keys_is_refused(url: str) -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "18150",
                                 "--store", url])

    assert isinstance(result.exception, OpenAccessRefusedError)
    assert "tailored keys create" in str(result.exception)
