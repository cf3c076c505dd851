"""The REST API: ``create_app(settings)`` builds it, ``run(settings)`` serves it.

Examples
--------
>>> from tailored.settings import Settings
>>> app = create_app(Settings(store_url="sqlite://"))  # nothing opened until startup
>>> sorted(app.openapi()["paths"])  # doctest: +NORMALIZE_WHITESPACE
['/events', '/health', '/items/{item_id}/similar', '/models', '/models/{version}/promote',
 '/recommendations/{user_id}']
"""

from __future__ import annotations

from tailored.settings import Settings

from .app import create_app, open_access_warning


def run(settings: Settings | None = None) -> None:
    """Serve the API with uvicorn on ``settings.host``:``settings.port`` until stopped."""
    import uvicorn

    from tailored.settings import load_settings

    settings = settings if settings is not None else load_settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="info")


__all__ = ["create_app", "open_access_warning", "run"]
