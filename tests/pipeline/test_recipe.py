from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tailored.errors import InvalidDataError
from tailored.models import ALS, ItemKNN
from tailored.pipeline import Pipeline, load_recipe
from tailored.ranking import RerankerStage
from tailored.ranking.rerankers import item_prices
from tailored.testing import checkerboard

RECIPES = Path(__file__).parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_recipes_load_and_fit(path: Path) -> None:
    pipeline = load_recipe(path).build().fit(checkerboard())
    assert len(pipeline.run("a000", k=3)) == 3
    assert pipeline.name == path.stem


def test_a_recipe_builds_a_pipeline_with_its_rules(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('name = "x"\n[model]\nmodel = "als"\nparams = { factors = 4 }\n\n'
                    "[[rules]]\nwhen = 'context.device == \"mobile\"'\npin = [\"A001\"]\n")
    pipeline = load_recipe(path).build()
    assert isinstance(pipeline, Pipeline) and pipeline.name == "x"
    assert isinstance(pipeline.scorer, ALS) and pipeline.scorer.config.factors == 4
    assert [rule.pin for rule in pipeline.rules] == [("A001",)]
    older = tmp_path / "plain.toml"  # the older spelling: parameters beside the name
    older.write_text('[model]\nname = "als"\nfactors = 4\n')
    built = load_recipe(older).build()
    assert isinstance(built.scorer, ALS) and built.scorer.config.factors == 4
    assert not len(built.rules) and built.name == "default"


@pytest.mark.parametrize(("text", "message"), [
    ('[model]\nname = "nope"\n', "unknown model 'nope'"),
    ('[model]\nmodel = "als"\nparams = { speed = 3 }\n', "speed"),
    ('[model]\nname = "als"\nfactors = -1\n', "factors"),
    ('[model]\nname = "als"\nspeed = 3\n', "speed"),
    ("[model\n", "not valid TOML"),
    ('name = "x"\n', "model: Field required"),
    ('[model]\nname = "popular"\n[[rules]]\nwhen = "user.age >"\npin = ["a"]\n', "column"),
])
def test_bad_recipes_say_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidDataError, match=message) as caught:
        load_recipe(path)
    assert str(path) in str(caught.value)


# ---- pipeline stages -------------------------------------------------------------------

RANKED = '''
name = "ranked"

[[candidates]]
model = "item_knn"
n = 8

[[candidates]]
name = "recent"
model = "item_knn"
recent_items = 3
n = 4

[ranker]
kind = "lambdarank"
n_estimators = 10
min_child_samples = 2
'''


def test_ranker_stages_compile_to_the_ranked_model(tmp_path: Path) -> None:
    from tailored.ranking import LearnedRanker

    path = tmp_path / "ranked.toml"
    path.write_text(RANKED)
    recipe = load_recipe(path)
    assert recipe.model.model == "ranked"
    model = recipe.build().scorer
    assert isinstance(model, LearnedRanker)
    assert [s.label for s in model.config.sources] == ["item_knn", "recent"]
    assert model.config.n_estimators == 10


def test_rerankers_and_rules_are_stages_around_the_ranker(tmp_path: Path) -> None:
    path = tmp_path / "full.toml"
    path.write_text(RANKED + '''
[[rerankers]]
kind = "diversify"
max_per_category = 2

[[rules]]
name = "hide A009"
exclude = { where = 'item_id == "A009"' }
''')
    pipeline = load_recipe(path).build()
    assert pipeline.scorer.name == "ranked" and len(pipeline.rules) == 1
    pipeline.fit(checkerboard())
    recs = pipeline.run(["a000", "b000"], k=5)
    assert "A009" not in set(recs["item_id"])
    per_category = recs.groupby(["user_id", recs["item_id"].str[0]]).size()
    assert per_category.max() <= 2  # each item has one category (its group), capped at 2
    pipeline.save(tmp_path / "artifact")
    assert sorted(p.name for p in (tmp_path / "artifact").iterdir()) == [
        "arrays.npz", "config.json", "scorer"]
    loaded = Pipeline.load(tmp_path / "artifact")
    assert loaded.run(["a000", "b000"], k=5).equals(recs)


def test_a_recipe_mixes_relevance_and_revenue_in_one_stage(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text('name = "shop"\npool = 20\n[model]\nmodel = "item_knn"\n\n'
                    '[[rerankers]]\nkind = "diversify"\nrevenue = 1.0\nnovelty = 0.0\n')
    pipeline = load_recipe(path).build()
    assert pipeline.config.rerankers == [RerankerStage(revenue=1.0)]
    data = checkerboard()
    plain = Pipeline(ItemKNN(), pool=20).fit(data)
    pipeline.fit(data)
    users = data.user_vocab.ids.tolist()
    prices = item_prices(data.items)
    rich, cheap = pipeline.run(users, k=3), plain.run(users, k=3)
    assert rich["item_id"].map(prices).mean() > cheap["item_id"].map(prices).mean()
    pipeline.save(tmp_path / "artifact")  # the knob and the prices survive a save
    pd.testing.assert_frame_equal(Pipeline.load(tmp_path / "artifact").run(users, k=3), rich)


@pytest.mark.parametrize(("text", "message"), [
    ('[model]\nname = "als"\n[ranker]\nkind = "lambdarank"\n', "not both"),
    ('[ranker]\nkind = "forest"\n', "ranker.kind 'forest' is unknown"),
    ('[[candidates]]\nmodel = "nope"\n', "unknown model 'nope'"),
    ('[[candidates]]\nmodel = "als"\n[[candidates]]\nmodel = "als"\n', "distinct names"),
    ('[model]\nname = "als"\n[[rerankers]]\nkind = "explore"\n', "learns online"),
    ('[model]\nname = "als"\n[[rerankers]]\ndiversity = 2\n', "diversity"),
    ('[model]\nname = "als"\n[[rerankers]]\nrevenue = 1.5\n', r"rerankers\.0\.revenue"),
])
def test_bad_pipeline_stages_say_what(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidDataError, match=message):
        load_recipe(path)


def test_shipped_pipelines_are_found_by_name() -> None:
    from tailored.pipeline.recipe import find_recipe, shipped_recipes

    assert {"hybrid", "ranked", "stacked", "switching"} <= set(shipped_recipes())
    assert find_recipe("ranked").model.model == "ranked"
    with pytest.raises(InvalidDataError, match="no recipe named 'nope'"):
        find_recipe("nope")


def test_train_a_shipped_pipeline_from_the_command_line(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    from typer.testing import CliRunner

    from tailored.cli import app
    from tailored.store import open_store

    monkeypatch.setenv("TAILORED_MODEL_DIR", str(tmp_path / "models"))
    store = f"sqlite:///{tmp_path}/t.db"
    events = checkerboard().events[["user_id", "item_id", "event_type", "timestamp"]]
    pd.DataFrame(events).to_csv(tmp_path / "events.csv", index=False)
    runner = CliRunner()
    imported = runner.invoke(app, ["import", "events", str(tmp_path / "events.csv"),
                                   "--store", store], catch_exceptions=False)
    assert imported.exit_code == 0, imported.output
    result = runner.invoke(app, ["train", "--recipe", "hybrid", "--store", store],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "model hybrid version 1" in result.output
    opened = open_store(store)
    active = opened.models.active()
    opened.close()
    assert active is not None and active.name == "hybrid"  # the recipe's name
    assert len(Pipeline.load(active.path).run("a000", k=3)) == 3
    wrong = runner.invoke(app, ["train", "--recipe", "nope", "--store", store])
    assert wrong.exit_code != 0 and "no recipe named 'nope'" in wrong.output
