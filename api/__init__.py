"""The HTTP layer: a Flask app factory. No SQL here: routes call the use cases in `ledger`."""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any, Callable

import flask_smorest
from flask import Flask

from ledger.clock import Clock, SystemClock
from ledger.services.ports import ApiKey
from ledger.services.writes import with_retries
from ledger.storage.engine import make_engines
from ledger.storage.uow import SqlUnitOfWorkFactory

from .errors import PROBLEM_MIMETYPE, register_error_handlers
from .http import after_request, before_request
from .schemas.common import Problem

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_CACHED_KEYS = 10_000

API_DESCRIPTION = """\
Loyalty points and cashback on an append-only, double-entry ledger.

Every write is idempotent: natural keys (order_id, ...) and the optional `Idempotency-Key` header.
A replay answers with the first status and body, byte for byte, and the header `Idempotent-Replayed: true`.
Every error is an RFC 9457 `application/problem+json` body with a stable `code`.
Amounts are integers: points, or minor units of the program's currency.
"""


class Api(flask_smorest.Api):
    """flask-smorest, with every error documented as a Problem under application/problem+json."""

    ERROR_SCHEMA = Problem

    # The document is built when first read (/openapi.json, /openapi.yaml, `make openapi`), not
    # while the app is created: describing every route is most of create_app's time, which every
    # gunicorn worker and every test's app would otherwise pay. Steps run in their original order.
    @property
    def spec(self):  # noqa: ANN201
        later = self.__dict__.get("_document_later")
        if later:
            self._document_later = []
            for step in later:
                step()
        return self.__dict__.get("_spec")

    @spec.setter
    def spec(self, value) -> None:  # noqa: ANN001
        self._spec = value

    def _later(self, step: Callable[[], Any]) -> None:
        self.__dict__.setdefault("_document_later", []).append(step)

    def register_blueprint(self, blp, *, parameters=None, **options) -> None:  # noqa: ANN001
        """Routes now; their description when the document is first read."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)

        def document() -> None:
            blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
            self._spec.tag({"name": name, "description": blp.description})

        self._later(document)

    def _register_responses(self) -> None:
        self._later(self._document_responses)

    def _register_etag_headers(self) -> None:
        self._later(super()._register_etag_headers)

    def _register_pagination_header(self) -> None:
        self._later(super()._register_pagination_header)

    def _document_responses(self) -> None:
        from flask_smorest.utils import prepare_response
        import http

        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            else:
                prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_error_handlers(self) -> None:
        """Our own handlers (api.errors) answer every error; smorest's would not be problem+json."""


class LedgerFlask(Flask):
    """Flask, answering `ensure_sync` once per function instead of on every call: Flask asks
    `inspect` whether each view and hook is a coroutine function several times per request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ensured: dict[Callable, Callable] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        try:
            return self._ensured[func]
        except KeyError:
            ensured = self._ensured[func] = super().ensure_sync(func)
            return ensured
        except TypeError:  # unhashable
            return super().ensure_sync(func)


class LedgerService:
    """What the routes reach through `current_app.extensions["ledger"]`."""

    def __init__(self, database_url: str, clock: Clock, pool_size: int, auth_cache_seconds: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engines = make_engines(database_url, pool_size=pool_size)
        self.uow = SqlUnitOfWorkFactory(self.engines)
        self.clock = clock
        self.auth_cache_seconds = auth_cache_seconds
        self.monotonic = monotonic  # the key cache's timer: elapsed time, not business time
        self._keys: dict[str, tuple[float, ApiKey]] = {}  # key hash -> (monotonic time looked up, key)

    def read(self, action: Callable[[Any], Any], single_statement: bool = False) -> Any:
        """A read in one database transaction (or, for a one-statement read, none: no BEGIN/ROLLBACK
        round trips); retried once the pool has dropped a dead connection."""
        return with_retries(lambda **kw: self.uow(write=False, autocommit=single_statement), action,
                            self.uow.is_retryable)

    def authenticate(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, unless unknown or revoked. A found key is trusted for
        `auth_cache_seconds` (one lookup per key per worker per interval, not one per request)."""
        cached = self._keys.get(key_hash)
        if cached is not None and self.monotonic() - cached[0] < self.auth_cache_seconds:
            key = cached[1]
        else:
            key = self.read(lambda uow: uow.api_keys.by_hash(key_hash), single_statement=True)
            if key is None or key.revoked_at is not None:
                self._keys.pop(key_hash, None)
                return None
            if self.auth_cache_seconds > 0:
                if len(self._keys) >= MAX_CACHED_KEYS:
                    self._keys.clear()
                self._keys[key_hash] = (self.monotonic(), key)
        now = self.clock.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            with self.uow(write=True) as uow:
                uow.api_keys.touch(key.id, now)
                uow.commit()
            key = replace(key, last_used_at=now)
            if key_hash in self._keys:
                self._keys[key_hash] = (self._keys[key_hash][0], key)
        return key

    def forget_keys(self) -> None:
        """After a key is revoked or rotated here: this worker looks every key up again."""
        self._keys.clear()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from .settings import Settings

    app = LedgerFlask(__name__)
    settings = Settings.from_env()
    overrides = test_config or {}
    settings = Settings(
        database_url=overrides.get("DATABASE_URL", settings.database_url),
        operator_token=overrides.get("OPERATOR_TOKEN", settings.operator_token),
        db_pool_size=overrides.get("DB_POOL_SIZE", settings.db_pool_size),
        auth_cache_seconds=overrides.get("AUTH_CACHE_SECONDS", settings.auth_cache_seconds),
    )
    app.config.update(
        LEDGER_SETTINGS=settings,
        API_TITLE="Loyalty Ledger",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.extensions["ledger"] = LedgerService(settings.database_url, overrides.get("CLOCK") or SystemClock(),
                                             settings.db_pool_size, settings.auth_cache_seconds,
                                             overrides.get("MONOTONIC") or time.monotonic)
    api = Api(app, spec_kwargs={
        "info": {"description": API_DESCRIPTION},
        "components": {"securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "A program's API key"},
            "operatorToken": {"type": "http", "scheme": "bearer", "description": "LEDGER_OPERATOR_TOKEN"},
        }},
    })
    app.extensions["ledger_api"] = api
    register_error_handlers(app)
    app.before_request(before_request)
    app.after_request(after_request)

    from .routes import register

    register(app, api)
    from .fast_paths import FastPaths

    app.wsgi_app = FastPaths(app, app.wsgi_app)  # type: ignore[method-assign]
    return app
