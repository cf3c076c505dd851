"""GET /demo/shop: a storefront a person can browse, personalised by tailored.

Served when the ``demo_storefront`` setting is on (``tailored demo`` turns it on): plain
HTML, CSS and a script (``tailored/serving/storefront/``) that use the JavaScript client
(``clients/js``, served as ``tailored.js``). Its rows are placements (``demo-home``,
``demo-new``, stored at start) and blocks (trending in the visitor's favourite category,
similar items, bought together, a cart's complements); clicks, carts and purchases go
back through the client, so the next page changes as the visitor browses.

The page plays the shop's frontend; ``/demo/shop/token`` plays its backend: it issues a
user token (when ``user_token_secret`` is set) for the page's anonymous visitor, whose
id (``visitor-`` and 8 hex digits) the page made up. Any caller may get a token for such
an id, so keep the demo off on a service with real users.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import FileResponse, HTMLResponse

from tailored.pipeline import Placement, save_placement
from tailored.store import Store

from .. import user_tokens
from ..deps import SettingsDep

router = APIRouter(tags=["storefront"], include_in_schema=False)

#: The storefront's rows that are placements, stored when the service starts with it on.
DEMO_PLACEMENTS = {
    "demo-home": Placement(description="The demo shop's homepage: for you", k=8,
                           new_arrivals=0.125),
    "demo-new": Placement(description="The demo shop's new arrivals", k=8, new_arrivals=1.0,
                          novelty=0.5),
}
_STATIC = {"shop.js": "text/javascript", "shop.css": "text/css",
           "tailored.js": "text/javascript"}
_VISITOR = re.compile(r"^visitor-[0-9a-f]{8}$")
_TOKEN_SECONDS = 24 * 3600


def store_demo_placements(store: Store) -> None:
    """The storefront's placements (a new version only where one changed)."""
    for name, placement in DEMO_PLACEMENTS.items():
        save_placement(store, name, placement, by="demo storefront")


def _asset(name: str) -> Any:
    return resources.files("tailored.serving").joinpath("storefront", name)


def _require_on(settings: SettingsDep) -> None:
    if not settings.demo_storefront:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            "the demo storefront is off; `tailored demo` serves it (or set "
            "demo_storefront=true on a service holding the sample shop)"))


@router.get("/demo/shop", response_class=HTMLResponse)
def storefront(settings: SettingsDep) -> HTMLResponse:
    _require_on(settings)
    return HTMLResponse(_asset("index.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-cache"})


@router.get("/demo/shop/static/{name}")
def storefront_static(name: Annotated[str, Path(max_length=32)],
                      settings: SettingsDep) -> FileResponse:
    _require_on(settings)
    media_type = _STATIC.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no storefront file {name!r}; there are {sorted(_STATIC)}")
    with resources.as_file(_asset(name)) as path:
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/demo/shop/token")
def visitor_token(visitor: Annotated[str, Query(max_length=32)],
                  settings: SettingsDep) -> dict[str, str | None]:
    """A user token for the page's anonymous visitor (None when the service issues no
    user tokens: an open demo service needs none)."""
    _require_on(settings)
    if not _VISITOR.match(visitor):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=(
            "the demo storefront issues tokens only for its own visitors: 'visitor-' and "
            "8 hex digits"))
    secret = settings.user_token_secret
    if secret is None:
        return {"token": None}
    return {"token": user_tokens.issue(secret.get_secret_value(), visitor,
                                       ttl_seconds=_TOKEN_SECONDS)}
