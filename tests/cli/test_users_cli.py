"""`tailored users export`: the user's document, printed or written to a file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tailored.cli import app
from tailored.schema import Event, User
from tailored.store import open_store

runner = CliRunner()


def test_export_prints_or_writes_the_user_s_document(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tailored.db'}"
    store = open_store(url)
    store.users.upsert([User(user_id="u1", attributes={"city": "Berlin"})])
    store.events.add([Event(user_id="u1", item_id="i1", timestamp=1714564800),
                      Event(user_id="u2", item_id="i1", timestamp=1714564800)])
    store.close()

    printed = runner.invoke(app, ["users", "export", "u1", "--store", url])
    written = runner.invoke(app, ["users", "export", "u1", "--store", url,
                                  "--output", str(tmp_path / "u1.json")])

    assert printed.exit_code == 0 and written.exit_code == 0, printed.output
    document = json.loads(printed.output)
    assert document["profile"]["attributes"] == {"city": "Berlin"}
    assert [event["item_id"] for event in document["events"]] == ["i1"]
    assert json.loads((tmp_path / "u1.json").read_text()) | {"exported_at": None} == \
        document | {"exported_at": None}
