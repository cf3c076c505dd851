"""The demo storefront's routes: off unless asked for, its placements stored at start,
and a user token for its own anonymous visitors only."""

from __future__ import annotations

from pydantic import SecretStr

from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import Store
from tailored.testing import LOCAL

from .conftest import TestClient, TrainedModel


def test_the_storefront_is_off_by_default(client: TestClient) -> None:
    for path in ("/demo/shop", "/demo/shop/static/shop.js",
                 "/demo/shop/token?visitor=visitor-0123abcd"):
        answer = client.get(path)
        assert answer.status_code == 404 and "tailored demo" in answer.json()["detail"]


def test_the_storefront_serves_its_page_and_placements(trained: TrainedModel,
                                                       settings: Settings) -> None:
    on = settings.model_copy(update={"demo_storefront": True})
    with TestClient(create_app(on), base_url=LOCAL) as client:
        page = client.get("/demo/shop")
        assert page.status_code == 200 and "/demo/shop/static/shop.js" in page.text
        for name in ("shop.js", "shop.css", "tailored.js"):
            asset = client.get(f"/demo/shop/static/{name}")
            assert asset.status_code == 200 and len(asset.text) > 100, name
        assert client.get("/demo/shop/static/secrets.txt").status_code == 404
        names = {p["name"] for p in client.get("/placements").json()}
        assert {"demo-home", "demo-new"} <= names
        assert client.get("/demo/shop/token?visitor=visitor-0123abcd").json() == {
            "token": None}  # open: no token needed
        assert client.get("/demo/shop/token?visitor=alice").status_code == 422


def test_a_visitor_token_reads_only_that_visitor(trained: TrainedModel, settings: Settings,
                                                 store: Store) -> None:
    store.keys.create("ops", ["admin"])  # keys exist: a page needs its token
    on = settings.model_copy(update={"demo_storefront": True,
                                     "user_token_secret": SecretStr("s" * 40)})
    with TestClient(create_app(on), base_url=LOCAL) as client:
        token = client.get("/demo/shop/token?visitor=visitor-0123abcd").json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        mine = client.get("/recommendations/visitor-0123abcd", headers=headers)
        theirs = client.get("/recommendations/visitor-99999999", headers=headers)
        assert mine.status_code == 200 and theirs.status_code == 403
