"""Placements: a checked configuration, read from TOML, that narrows a request."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailored.errors import InvalidDataError
from tailored.pipeline import Overrides, Placement, load_placements


def test_a_request_narrows_a_placement_and_replaces_its_knobs() -> None:
    placement = Placement(filter="price < 100", boosts=["in_stock == true:1.5"],
                          diversity=0.2, revenue=0.3)
    asked = placement.overrides(Overrides.parse("price > 10", diversity=0.5,
                                                exclude=["i1"]))
    assert [(rule.name, kind) for rule in asked.rules for kind, _ in rule.actions()] == [
        ("filter", "filter"), ("boost 1", "boost"), ("filter", "filter")]
    assert (asked.diversity, asked.revenue, asked.exclude) == (0.5, 0.3, ("i1",))
    assert Placement().overrides(Overrides()) == Overrides()


def test_only_what_differs_from_the_defaults_is_stored() -> None:
    assert Placement().spec() == {}
    assert Placement(k=4, fallback="trending").spec() == {"k": 4, "fallback": "trending"}
    assert Placement(**Placement(k=4, new_arrivals=0.1).spec()) == Placement(
        k=4, new_arrivals=0.1)


def test_a_placements_file_is_read_whole(tmp_path: Path) -> None:
    file = tmp_path / "placements.toml"
    file.write_text('[home]\nk = 12\nnew_arrivals = 0.1\n\n[product-page]\n'
                    'model = "item_knn"\nfilter = "price < 50"\n')
    placements = load_placements(file)
    assert list(placements) == ["home", "product-page"]
    assert placements["home"].k == 12 and placements["product-page"].filter == "price < 50"


@pytest.mark.parametrize(("text", "message"), [
    ("[home\n", "not valid TOML"),
    ("home = 3\n", "must be a table"),
    ("[home]\nk = 0\n", "[home]: k:"),
    ("[home]\nfilter = 'price <'\n", "unexpected end of expression"),
    ("[home]\ncolour = 'red'\n", "colour: Extra inputs"),
    ("['bad name']\n", "a placement name is"),
])
def test_a_bad_file_says_where(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "placements.toml"
    file.write_text(text)
    with pytest.raises(InvalidDataError, match="placements file") as raised:
        load_placements(file)
    assert message in str(raised.value)
    with pytest.raises(InvalidDataError, match="does not exist"):
        load_placements(tmp_path / "missing.toml")
