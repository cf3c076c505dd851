"""Parts of composites: fitted once per dataset and params while reuse is on."""

from __future__ import annotations

import pytest

from tailored.models import Popular
from tailored.ranking import Part, reusing_fitted_parts
from tailored.ranking.parts import Parts
from tailored.testing import checkerboard


@pytest.fixture()
def fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The digest of each dataset a Popular part is fitted on."""
    seen: list[str] = []
    original = Popular.fit

    def spy(self: Popular, data, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(data.digest)
        return original(self, data, **kwargs)

    monkeypatch.setattr(Popular, "fit", spy)
    return seen


def test_inside_the_block_equal_parts_on_equal_data_are_fitted_once(fits: list[str]) -> None:
    data, other = checkerboard(seed=0), checkerboard(seed=1)
    spec = [Part(model="popular")]
    with reusing_fitted_parts():
        first = Parts(spec).fit(data)
        again = Parts(spec).fit(checkerboard(seed=0))  # equal events, another object
        elsewhere = Parts(spec).fit(other)
        decayed = Parts([Part(model="popular", params={"half_life_days": 2.0})]).fit(data)
    assert fits == [data.digest, other.digest, data.digest]
    assert again.models == first.models and elsewhere.models != first.models
    assert next(iter(decayed.models.values())).config.half_life_days == 2.0


def test_outside_the_block_every_fit_is_new(fits: list[str]) -> None:
    data = checkerboard()
    with reusing_fitted_parts():
        Parts([Part(model="popular")]).fit(data)
    Parts([Part(model="popular")]).fit(data)
    Parts([Part(model="popular")]).fit(data)
    assert len(fits) == 3



def test_parts_of_a_composite_build_no_item_index() -> None:
    """A composite scores every item of its parts, so a part never builds an index."""
    part = Part(model="als", params={"factors": 2, "iterations": 2, "ann_min_items": 1})
    model = part.build().fit(checkerboard())

    assert model.config.ann_min_items is None and model.item_index_ is None
    assert Part(model="popular").build().item_index_ is None
