"""The demo storefront in headless Chromium, as a person would use it: the homepage's
"for you" row, three items of one category clicked, and the row turned towards that
category on the next page load; a screenshot goes to docs/storefront.png.

Needs Debian's ``chromium`` and the ``playwright`` Python package, as the dashboard's
browser test does; without them the test is skipped, loudly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tailored.ingest import import_file
from tailored.jobs import train_model
from tailored.pipeline import Recipe
from tailored.sample import shop
from tailored.settings import Settings
from tailored.store import open_store

from .test_dashboard_browser import _serving, browser  # noqa: F401 (a fixture)

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "storefront.png"


@pytest.fixture(scope="module")
def demo_shop(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("storefront")
    settings = Settings(store_url=f"sqlite:///{root / 'shop.db'}", model_dir=root / "models",
                        demo_storefront=True)
    sample = shop(n_users=600, n_items=150, n_events=20_000, seed=5)
    paths = {path.stem: path for path in sample.write(root / "data", format="csv")}
    with closing(open_store(settings.store_url)) as store:
        for kind in ("items", "users", "events"):
            import_file(store, paths[kind], kind)
        train_model(store, settings, Recipe.of("als"), validate=False)
    return settings


@pytest.fixture
def server(demo_shop: Settings) -> Iterator[str]:
    with _serving(demo_shop) as url:
        yield url


def _ready(page: Any) -> None:
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)


def _row_categories(page: Any, row: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for categories in page.eval_on_selector_all(
            f"section[data-row={row}] .card", "cards => cards.map(c => c.dataset.categories)"):
        found.update(categories.split())
    return found


def test_the_for_you_row_follows_what_a_visitor_clicks(browser: Any,  # noqa: F811
                                                        server: str) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/demo/shop")
    _ready(page)
    before = _row_categories(page, "for-you")
    assert sum(before.values()) > 0, "the for-you row shows items"
    categories = page.eval_on_selector_all("#categories a", "links => links.map(l => l.text)")
    assert categories, "the category menu lists the shop's categories"
    chosen = min(categories, key=lambda name: (before[name], name))  # the least shown

    for position in range(3):  # three items of that category, clicked in the page
        page.click(f"#categories a:text-is('{chosen}')")
        # The page renders on the hash change: wait for this category's cards, not for a
        # state the previous page may still show.
        card = page.wait_for_selector(
            f"section[data-row=category] .card >> nth={position}", timeout=30_000)
        assert card is not None
        card.click()
        page.wait_for_selector("section.product", timeout=30_000)
        _ready(page)

    page.goto(f"{server}/demo/shop#/")
    page.reload()
    _ready(page)
    after = _row_categories(page, "for-you")
    print(f"{chosen}: {before[chosen]} -> {after[chosen]} of the for-you row")
    assert after[chosen] > before[chosen]
    assert page.locator("section[data-row=trending] h2 .category").inner_text() == chosen
    assert errors == [], errors
    page.hover("section[data-row=for-you] .card >> nth=0")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
