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

import copy

from tailored.settings import Settings, load_settings

from .app import create_app
from .security import open_access_warning


def run(settings: Settings | None = None) -> None:
    """Serve the API with uvicorn on ``settings.host``:``settings.port`` until stopped.

    tailored's own log lines (the open-access warning, model swaps) go where uvicorn's
    do, in the same format.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    settings = settings if settings is not None else load_settings()
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["tailored"] = {"handlers": ["default"], "level": "INFO",
                                         "propagate": False}
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=log_config)


__all__ = ["create_app", "open_access_warning", "run"]
