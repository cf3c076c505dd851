"""`tailored webhooks add|list|remove|deliveries|send`, and `tailored experiments stop`
telling the subscribers."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.errors import InvalidDataError, NotFoundError
from tailored.store import open_store
from tailored.testing.webhooks import LoopbackReceiver

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("TAILORED_STORE_URL", "TAILORED_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TAILORED_WEBHOOK_TIMEOUT_SECONDS", "1")
    return f"sqlite:///{tmp_path / 'tailored.db'}"


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_webhook_is_added_sent_to_logged_and_removed(url: str) -> None:
    with LoopbackReceiver() as receiver:
        output = _ok(["webhooks", "add", receiver.url, "--event", "experiment.verdict",
                      "--store", url])
        [secret] = [line for line in output.splitlines() if line.startswith("whsec_")]
        receiver.secret = secret
        store = open_store(url)
        [hook] = store.webhooks.list()
        listed = _ok(["webhooks", "list", "--store", url])
        assert hook.subscription_id in listed and secret not in listed
        experiment = store.experiments.create("x", [("A", 1, 1.0), ("B", 2, 1.0)])
        store.experiments.start(experiment.experiment_id)

        _ok(["experiments", "stop", experiment.experiment_id, "--store", url])
        sent = _ok(["webhooks", "send", "--store", url])

        assert "1 attempts: 1 delivered" in sent
        [got] = receiver.received
        assert got.verified and got.payload["data"]["experiment_id"] == \
            experiment.experiment_id
        log = _ok(["webhooks", "deliveries", hook.subscription_id, "--store", url])
        assert "experiment.verdict" in log and "delivered" in log
        _ok(["webhooks", "remove", hook.subscription_id, "--store", url])
        assert not store.webhooks.list()[0].active
        store.close()


def test_bad_input_says_what_to_do(url: str) -> None:
    with pytest.raises(InvalidDataError, match="http:// or https://"):
        runner.invoke(app, ["webhooks", "add", "ftp://x", "--event", "drift.alert",
                            "--store", url], catch_exceptions=False)
    with pytest.raises(InvalidDataError, match=r"the kinds are model\.promoted"):
        runner.invoke(app, ["webhooks", "add", "https://x.example/", "--event", "nope",
                            "--store", url], catch_exceptions=False)
    with pytest.raises(NotFoundError, match="`tailored webhooks list`"):
        runner.invoke(app, ["webhooks", "deliveries", "nope", "--store", url],
                      catch_exceptions=False)
    with pytest.raises(NotFoundError, match="`tailored webhooks list`"):
        runner.invoke(app, ["webhooks", "remove", "nope", "--store", url],
                      catch_exceptions=False)
