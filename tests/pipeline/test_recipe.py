from __future__ import annotations

from pathlib import Path

import pytest

from tailored.errors import InvalidDataError
from tailored.models import ALS, RuleBased
from tailored.pipeline import load_recipe
from tailored.testing import checkerboard

RECIPES = Path(__file__).parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_recipes_load_and_fit(path: Path) -> None:
    model = load_recipe(path).build().fit(checkerboard())
    assert len(model.recommend("a000", k=3)) == 3


def test_a_recipe_with_rules_wraps_its_model(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('name = "x"\n[model]\nname = "als"\nfactors = 4\n\n[[rules]]\n'
                    "when = 'context.device == \"mobile\"'\npin = [\"A001\"]\n")
    model = load_recipe(path).build()
    assert isinstance(model, RuleBased) and model.config.base_params == {"factors": 4}
    plain = tmp_path / "plain.toml"
    plain.write_text('[model]\nname = "als"\nfactors = 4\n')
    built = load_recipe(plain).build()
    assert isinstance(built, ALS) and built.config.factors == 4


@pytest.mark.parametrize(("text", "message"), [
    ('[model]\nname = "nope"\n', "unknown model 'nope'"),
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
