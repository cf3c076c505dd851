"""The REST API: ``create_app(settings)`` builds it, ``run(settings)`` serves it.

Examples
--------
>>> from tailored.settings import Settings
>>> app = create_app(Settings(store_url="sqlite://"))  # nothing opened until startup
>>> paths = app.openapi()["paths"]
>>> {"/events", "/recommendations/{user_id}", "/health", "/metrics"} <= set(paths)
True
>>> sorted(path for path in paths
...        if path.startswith(("/users", "/keys")))  # doctest: +NORMALIZE_WHITESPACE
['/keys', '/keys/{key_id}', '/users', '/users/{user_id}', '/users/{user_id}/consent',
 '/users/{user_id}/erase', '/users/{user_id}/export', '/users/{user_id}/similar',
 '/users/{user_id}/token']
"""

from __future__ import annotations

import copy
import json
import os

from pydantic import SecretStr

from tailored.settings import Settings, load_settings

from .app import create_app
from .auth import OpenAccessRefusedError, check_open_access, open_access_warning


def run(settings: Settings | None = None) -> None:
    """Serve the API with uvicorn on ``settings.host``:``settings.port`` until stopped.

    tailored's own log lines (the open-access warning, model swaps) go where uvicorn's
    do, in the same format.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    settings = settings if settings is not None else load_settings()
    refuse_open_access(settings)
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["tailored"] = {"handlers": ["default"], "level": "INFO",
                                         "propagate": False}
    if settings.workers > 1:
        # Each worker process builds its own app from the environment: put the settings
        # there. Workers share nothing but the store, which keeps them consistent.
        os.environ.update(settings_environment(settings))
        # A worker loading a large model answers the supervisor's pings late; the
        # default 5 s would have it killed and restarted over and over.
        uvicorn.run("tailored.serving:create_app", factory=True, workers=settings.workers,
                    host=settings.host, port=settings.port, log_config=log_config,
                    access_log=settings.access_log, timeout_worker_healthcheck=120)
        return
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=log_config, access_log=settings.access_log)


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as ``TAILORED_*`` environment variables (nested values as JSON).

    Examples
    --------
    >>> env = settings_environment(Settings(store_url="sqlite:///x.db", workers=2))
    >>> env["TAILORED_STORE_URL"], env["TAILORED_WORKERS"]
    ('sqlite:///x.db', '2')
    """
    values = settings.model_dump(mode="json")
    for name in values:  # a secret dumps as "**********": the worker needs the secret
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):
            values[name] = secret.get_secret_value()
    return {f"TAILORED_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in values.items()
            if value is not None}  # unset: the worker reads the same default


def refuse_open_access(settings: Settings) -> None:
    """Fail before serving when ``settings`` would serve open beyond 127.0.0.1.

    Raises
    ------
    OpenAccessRefusedError
        With what to do: create a key, listen on 127.0.0.1, or set ``allow_open_access``.
    """
    from tailored.store import open_store_from

    store = open_store_from(settings)
    try:
        check_open_access(settings, keys_exist=store.keys.count() > 0)
    finally:
        store.close()


__all__ = ["OpenAccessRefusedError", "create_app", "open_access_warning",
           "refuse_open_access", "run"]
