"""The command line end to end: the demo without serving, and the import -> train ->
evaluate -> recommend path a new user follows."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.store import open_store

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TAILORED_STORE_URL", "TAILORED_MODEL_DIR", "TAILORED_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_explains_itself() -> None:
    for command in ("init", "import", "train", "evaluate", "tune", "recommend", "serve",
                    "demo"):
        output = _ok([command, "--help"])
        assert "Usage" in output and len(output) > 200, command


def test_demo_without_serving_runs_the_whole_loop(workdir: Path) -> None:
    output = _ok(["demo", "--no-serve", "--users", "300", "--items", "120",
                  "--events", "20000"])
    for model in ("popular", "item_knn", "als"):
        assert re.search(rf"{model}\s+0\.\d{{3}}\s+0\.\d{{3}}", output), output
    assert "example recommendations" in output
    store = open_store("sqlite:///tailored.db")
    assert store.events.count() == 20_000
    assert store.items.count() == 120 and store.users.count() == 300
    active = store.models.active()
    assert active is not None and active.name == "als"
    assert len(store.models.list()) == 3
    assert Path(active.path, "arrays.npz").exists()


def _write_rounds(path: Path, rounds: int, items: int) -> None:
    """Rounds of one click per user (40 users, two groups of ``items`` items), so every
    user has history before any test period."""
    pd.DataFrame({
        "user_id": [f"u{u}" for _ in range(rounds) for u in range(40)],
        "item_id": [f"{'A' if u < 20 else 'B'}{(u + j) % items}" for j in range(rounds)
                    for u in range(40)],
        "event_type": "click",
        "timestamp": pd.date_range("2026-01-01", periods=40 * rounds, freq="h", tz="UTC"),
    }).to_csv(path, index=False)


def test_import_train_evaluate_recommend(workdir: Path) -> None:
    _write_rounds(workdir / "events.csv", rounds=5, items=10)
    _ok(["init"])
    assert Path("tailored.toml").exists()
    assert "imported 200" in _ok(["import", "events", "events.csv"])
    assert "already there 200" in _ok(["import", "events", "events.csv"])
    trained = _ok(["train", "--model", "item_knn", "--set", "neighbors=5"])
    assert "version 1" in trained and "(active)" in trained
    table = _ok(["evaluate", "--models", "popular,item_knn", "--report", "out"])
    assert "NDCG@10" in table and "item_knn" in table
    assert "item_knn" in Path("out/report.html").read_text()
    tuned = _ok(["tune", "--n-trials", "2", "--models", "item_knn,ease", "--report", "t.json"])
    assert "train it with: tailored train --model" in tuned
    assert json.loads(Path("t.json").read_text())["test"]["users"] > 0
    recs = _ok(["recommend", "u1", "--k", "3"])
    assert "u1" in recs and re.search(r"A\d", recs)
    _ok(["recommend", "--all", "--output", "recs.csv"])
    written = pd.read_csv("recs.csv")
    assert written["user_id"].nunique() == 40 and len(written) == 400


def test_a_tuned_stacked_pipeline_trains_from_the_printed_command(workdir: Path) -> None:
    _write_rounds(workdir / "events.csv", rounds=12, items=15)
    _ok(["init"])
    _ok(["import", "events", "events.csv"])
    tuned = _ok(["tune", "--n-trials", "1", "--models", "item_knn,popular,ranked",
                 "--protocol", "leave-last-one-out"])
    command = next(line for line in tuned.splitlines() if line.startswith("train it with"))
    arguments = shlex.split(command.removeprefix("train it with: tailored "))
    assert re.search(r"ranked\s+1\s", tuned)  # the ranker was searched too
    if "ranked" in arguments:  # it won: it stacks on the tuned families
        setting = next(a for a in arguments if a.startswith("sources="))
        sources = json.loads(setting.removeprefix("sources="))
        assert {source["model"] for source in sources} == {"item_knn", "popular"}
    assert "version 1" in _ok(arguments)


def test_bad_parameters_fail_clearly(workdir: Path) -> None:
    result = runner.invoke(app, ["train", "--set", "nonsense"])
    assert result.exit_code != 0 and "key=value" in result.output
    result = runner.invoke(app, ["import", "events", "missing.csv"])
    assert result.exit_code != 0 and "does not exist" in result.output


def test_recommend_with_diversity_novelty_cap_and_reasons(workdir: Path) -> None:
    events = pd.DataFrame({
        "user_id": [f"u{u}" for u in range(30) for _ in range(4)],
        "item_id": [f"{'A' if u < 15 else 'B'}{(u + j) % 8}" for u in range(30)
                    for j in range(4)],
        "event_type": "click",
        "timestamp": pd.date_range("2026-01-01", periods=120, freq="h", tz="UTC")})
    items = pd.DataFrame({"item_id": [f"{g}{i}" for g in "AB" for i in range(8)],
                          "title": [f"{g} title {i}" for g in "AB" for i in range(8)],
                          "categories": [f'["{g}{i % 2}"]' for g in "AB" for i in range(8)]})
    events.to_csv(workdir / "events.csv", index=False)
    items.to_csv(workdir / "items.csv", index=False)
    _ok(["init"])
    _ok(["import", "events", "events.csv"])
    _ok(["import", "items", "items.csv"])
    _ok(["train", "--model", "item_knn"])
    _ok(["recommend", "u1", "--k", "4", "--diversity", "0.5", "--novelty", "0.2",
         "--max-per-category", "2", "--explain", "--output", "recs.csv"])
    recs = pd.read_csv("recs.csv")
    assert recs["rank"].tolist() == [1, 2, 3, 4]
    categories = recs["item_id"].str[:1] + (recs["item_id"].str[1:].astype(int) % 2).astype(str)
    assert categories.value_counts().max() <= 2
    assert recs["reason"].str.startswith("because you viewed A title").any()
    result = runner.invoke(app, ["recommend", "u1", "--diversity", "2"])
    assert result.exit_code != 0 and "diversity" in result.output

    # Items like one, and like a cart, through a filter and an exclusion.
    def listed(output: str) -> list[str]:
        return re.findall(r"│\s*\d+\s*│\s*([AB]\d)\s*│", output)

    alike = listed(_ok(["similar", "A1", "--k", "3"]))
    assert len(alike) == 3 and all(item.startswith("A") for item in alike)
    cart = listed(_ok(["similar", "A1", "A2", "--k", "4", "--exclude", "A3",
                       "--filter", 'item_id != "A0"']))
    assert cart == ["A4", "A7", "A5", "A6"]  # the cart's group first; A0..A3 left out
    by_content = listed(_ok(["similar", "A1", "--kind", "content", "--k", "3"]))
    assert set(by_content) == {"A3", "A5", "A7"}  # the same category, A1's
    wrong = runner.invoke(app, ["similar", "A1", "--kind", "magic"])
    assert wrong.exit_code != 0 and "co_views" in wrong.output
    like_u1 = re.findall(r"│\s*\d+\s*│\s*(u\d+)\s*│", _ok(["users", "similar", "u1"]))
    assert len(like_u1) == 10 and all(int(user[1:]) < 15 for user in like_u1)  # group A
    every_time = listed(_ok(["popular", "--days", "3650", "--k", "3"]))
    assert len(every_time) == 3  # the events of 2026-01-01 on
    in_b = listed(_ok(["popular", "--days", "3650", "--category", '["B1"]', "--trending"]))
    assert in_b and set(in_b) <= {"B1", "B3", "B5", "B7"}
    unknown = runner.invoke(app, ["similar", "Z9"])
    assert unknown.exit_code != 0 and "nor the catalog" in unknown.output


def test_similar_bought_together_reads_purchases_imported_after_training(
        workdir: Path) -> None:
    pd.DataFrame({"user_id": [f"u{u}" for u in range(20) for _ in range(3)],
                  "item_id": [f"A{(u + j) % 6}" for u in range(20) for j in range(3)],
                  "event_type": "click",
                  "timestamp": pd.date_range("2026-01-01", periods=60, freq="h", tz="UTC")},
                 ).to_csv(workdir / "clicks.csv", index=False)
    _ok(["init"])
    _ok(["import", "events", "clicks.csv"])
    _ok(["train", "--model", "item_knn"])
    # After training: A0 bought with A2 in two sessions; without a session, with A1 on
    # the same day and with A3 three days later (another basket).
    pd.DataFrame({
        "user_id": ["b1", "b1", "b2", "b2", "b3", "b3", "b3"],
        "item_id": ["A0", "A2", "A0", "A2", "A0", "A1", "A3"],
        "event_type": "purchase",
        "timestamp": ["2026-02-01T10:00:00Z", "2026-02-01T10:05:00Z", "2026-02-02T10:00:00Z",
                      "2026-02-02T10:01:00Z", "2026-02-03T10:00:00Z", "2026-02-03T18:00:00Z",
                      "2026-02-06T10:00:00Z"],
        "session_id": ["s1", "s1", "s2", "s2", None, None, None]},
    ).to_csv(workdir / "purchases.csv", index=False)
    _ok(["import", "events", "purchases.csv"])

    output = _ok(["similar", "A0", "--kind", "bought_together"])

    rows = re.findall(r"│\s*\d+\s*│\s*(A\d)\s*│\s*([\d.]+)\s*│", output)
    assert rows == [("A2", "0.6667"), ("A1", "0.3333")]  # of A0's 3 baskets
    filtered = _ok(["similar", "A0", "--kind", "bought_together", "--exclude", "A2"])
    assert re.findall(r"│\s*\d+\s*│\s*(A\d)\s*│", filtered) == ["A1"]
    nobody = _ok(["similar", "A5", "--kind", "bought_together"])  # bought by no one
    assert "like A5" in nobody and re.findall(r"│\s*\d+\s*│", nobody) == []
    wrong = runner.invoke(app, ["similar", "A0", "--kind", "magic"])
    assert wrong.exit_code != 0 and "bought_together" in wrong.output


def test_import_takes_the_event_types_the_settings_name(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "events.csv").write_text("user_id,item_id,event_type,timestamp\n"
                                        "u1,i1,wishlist,1714564800\n")
    refused = runner.invoke(app, ["import", "events", "events.csv"])
    monkeypatch.setenv("TAILORED_EVENT_WEIGHTS__CUSTOM", '{"wishlist": 3.0}')

    _ok(["import", "events", "events.csv"])

    assert refused.exit_code != 0 and "wishlist" in str(refused.exception)
    assert open_store("sqlite:///tailored.db").events.count() == 1


def test_placements_are_loaded_listed_shown_used_and_deleted(workdir: Path) -> None:
    _write_rounds(workdir / "events.csv", rounds=4, items=15)
    _ok(["init"])
    _ok(["import", "events", "events.csv"])
    _ok(["train", "--model", "popular"])
    Path("placements.toml").write_text('[email-weekly]\nk = 3\n\n[home]\nk = 5\n')
    assert "email-weekly: version 1 (new)" in _ok(["placements", "load", "placements.toml"])
    Path("placements.toml").write_text('[email-weekly]\nk = 2\n\n[home]\nk = 5\n')
    loaded = _ok(["placements", "load", "placements.toml"])
    assert "email-weekly: version 2 (changed)" in loaded and "home: version 1 (unchanged)" \
        in loaded
    assert "email-weekly" in _ok(["placements", "list"])
    shown = [json.loads(line) for line in _ok(["placements", "show", "email-weekly"])
             .splitlines() if line.startswith("{")]
    assert [(v["version"], v["placement"]) for v in shown] == [(1, {"k": 3}), (2, {"k": 2})]
    _ok(["recommend", "--all", "--placement", "email-weekly", "--output", "weekly.csv"])
    weekly = pd.read_csv("weekly.csv")
    assert weekly.groupby("user_id").size().max() == 2  # the placement's k
    assert "deleted placement home" in _ok(["placements", "delete", "home"])
    missing = runner.invoke(app, ["recommend", "--all", "--placement", "home"])
    assert missing.exit_code != 0
