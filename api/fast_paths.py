"""The hottest read, answered below Flask: `GET /v1/customers/{id}/balances` in its plain case.

A mobile app polls balances far more often than anything else is called. Through Flask, webargs and
flask-smorest, their machinery (request context, URL map, two argument parsers, response object) was
about 0.11 ms of that read's 0.29 ms of Python (bench/profile_checkout.py); `make bench` holds the
read against a bare Flask app. This WSGI
wrapper answers the plain case itself and hands every other request to Flask unchanged:

- the plain case is `GET` on exactly that path, no query string, a customer id the route would
  accept, and a bearer API key that `LedgerService.authenticate` accepts with a role the route allows;
- the answer is the route's own, byte for byte: the same use case (`queries.customer_balances`),
  the same body (`balances_body`, `dumps`), the same headers in the same order, the same request id
  rule; tests/api/test_fast_paths.py compares the two on every case;
- anything else (another method or path, `?as_of=`, a missing, unknown, revoked or forbidden key,
  an unknown customer, any error on the way) goes to Flask, which answers it as before (401, 403,
  404, 422, 503 problem+json). A request that falls back after a key lookup looks it up again:
  only failures pay that.

The roles come from the route's own `requires(...)`, so the two cannot disagree on who may read.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from ledger.services import queries
from ledger.services.programs import hash_secret

from .errors import dumps
from .http import JSON_MIMETYPE, bearer_token, request_id
from .schemas.common import ID_PATTERN

BALANCES_ENDPOINT = "customers.get_balances"


class BalanceReadFastPath:
    """WSGI middleware in front of `app.wsgi_app`; see the module docstring for what it answers."""

    def __init__(self, app: Any, wsgi_app: Callable) -> None:
        from .routes.customers import balances_body

        self.wsgi_app = wsgi_app
        self.ledger = app.extensions["ledger"]
        self.roles = frozenset(app.view_functions[BALANCES_ENDPOINT]._required_roles)
        self.body = balances_body
        # The route's own rule, with the customer id as the schema's identifier pattern.
        (rule,) = app.url_map.iter_rules(BALANCES_ENDPOINT)
        self.path = re.compile(re.escape(rule.rule).replace(re.escape("<customer_id>"),
                                                            f"({ID_PATTERN.strip('^$')})"))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        answer = self._answer(environ) if environ.get("REQUEST_METHOD") == "GET" else None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        start_response("200 OK", [("Content-Type", JSON_MIMETYPE), ("Content-Length", str(len(answer))),
                                  ("X-Request-Id", request_id(environ))])
        return [answer]

    def _answer(self, environ: dict[str, Any]) -> bytes | None:
        """The encoded body for the plain case, or None to let Flask answer."""
        if environ.get("QUERY_STRING") or environ.get("SCRIPT_NAME"):
            return None
        match = self.path.fullmatch(environ.get("PATH_INFO", ""))
        token = bearer_token(environ) if match else None
        if token is None:
            return None
        ledger = self.ledger
        try:
            key = ledger.authenticate(hash_secret(token))
            if key is None or key.role not in self.roles:
                return None
            customer_id, now = match.group(1), ledger.clock.now()
            balances = ledger.read(lambda uow: queries.customer_balances(uow, now, key.program_id, customer_id),
                                   single_statement=True)
        except Exception:  # noqa: BLE001 - Flask answers it again, with its error handlers
            return None
        return dumps(self.body(balances)).encode()
