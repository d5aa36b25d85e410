"""The hottest calls, answered below Flask in their plain case: `GET /v1/customers/{id}/balances`
and `POST /v1/purchases`.

A mobile app polls balances far more often than anything else is called, and a storefront records a
purchase at every checkout. Through Flask, webargs and flask-smorest, their machinery (request
context, URL map, argument parsers, response object) was about 0.11 ms of the read's 0.29 ms of
Python (bench/profile_checkout.py), and about a tenth of a purchase's; `make bench` holds both
against a bare Flask app and pgbench. This WSGI wrapper answers the plain cases itself and hands
every other request to Flask unchanged:

- the plain balance read is `GET` on exactly that path, no query string, a customer id the route
  would accept, and a bearer API key that `LedgerService.authenticate` accepts with a role the route
  allows; the answer is the route's own, byte for byte: the same use case (`queries.customer_balances`),
  the same body (`balances_body`, `dumps`), the same headers in the same order, the same request id
  rule;
- the plain purchase is `POST` on exactly that path, no query string, an accepted key with a role the
  route allows, a well-formed Idempotency-Key if any, and an `application/json` body of at most 64 KiB
  that parses strictly and loads through the route's own schema (`PurchaseCreate`); it runs the
  route's own write (`purchase_write`: the same idempotency claims, use case, stored answer and
  replay) and answers the stored answer with the route's headers;
- anything else (another method or path, a query string, a missing, unknown, revoked or forbidden
  key, a body that is not plain JSON or that the schema refuses, any error on the way) goes to Flask,
  which answers it as before (400, 401, 403, 404, 415, 422, 503 problem+json), with the body it was
  sent. A request that falls back after a key lookup looks it up again: only failures pay that. A
  purchase that fails on the way is run again by the route, which is safe because the write is
  idempotent: a failed attempt wrote nothing, and one that committed is replayed.

tests/api/test_fast_paths.py compares the two ways on every case. The roles come from the routes'
own `requires(...)`, so the two cannot disagree on who may call.
"""
from __future__ import annotations

import io
import re
from typing import Any, Callable, Iterable

from werkzeug.http import HTTP_STATUS_CODES

from ledger.services import queries
from ledger.services.ports import BookingContext, StoredAnswer
from ledger.services.programs import hash_secret

from .errors import dumps
from .http import (
    IDEMPOTENCY_KEY, JSON_MIMETYPE, Principal, answer_mimetype, bearer_token, fingerprint_of, json_body, request_id,
)
from .schemas.common import ID_PATTERN
from .schemas.purchases import PurchaseCreate

BALANCES_ENDPOINT = "customers.get_balances"
PURCHASE_ENDPOINT = "purchases.create_purchase"
_MAX_PURCHASE_BODY = 64 * 1024


class FastPaths:
    """WSGI middleware in front of `app.wsgi_app`; see the module docstring for what it answers."""

    def __init__(self, app: Any, wsgi_app: Callable) -> None:
        from .routes.customers import balances_body
        from .routes.purchases import purchase_write

        self.wsgi_app = wsgi_app
        self.ledger = app.extensions["ledger"]
        self.balance_roles = frozenset(app.view_functions[BALANCES_ENDPOINT]._required_roles)
        self.balance_body = balances_body
        # The route's own rule, with the customer id as the schema's identifier pattern.
        (rule,) = app.url_map.iter_rules(BALANCES_ENDPOINT)
        self.balance_path = re.compile(re.escape(rule.rule).replace(re.escape("<customer_id>"),
                                                            f"({ID_PATTERN.strip('^$')})"))
        (purchase_rule,) = app.url_map.iter_rules(PURCHASE_ENDPOINT)
        self.purchase_path = purchase_rule.rule
        self.purchase_roles = frozenset(app.view_functions[PURCHASE_ENDPOINT]._required_roles)
        self.purchase_schema = PurchaseCreate()
        self.purchase_write = purchase_write

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            answer = self._balances(environ)
            if answer is not None:
                start_response("200 OK", [("Content-Type", JSON_MIMETYPE), ("Content-Length", str(len(answer))),
                                          ("X-Request-Id", request_id(environ))])
                return [answer]
        elif method == "POST" and environ.get("PATH_INFO") == self.purchase_path:
            rid = request_id(environ)
            stored = self._purchase(environ, rid)
            if stored is not None:
                answer, replayed = stored
                body = answer.body.encode()
                headers = [("Content-Type", answer_mimetype(answer)), ("Content-Length", str(len(body)))]
                if replayed:
                    headers.append(("Idempotent-Replayed", "true"))
                headers.append(("X-Request-Id", rid))
                start_response(f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}", headers)
                return [body]
        return self.wsgi_app(environ, start_response)

    def _balances(self, environ: dict[str, Any]) -> bytes | None:
        """The encoded body for the plain balance read, or None to let Flask answer."""
        if environ.get("QUERY_STRING") or environ.get("SCRIPT_NAME"):
            return None
        match = self.balance_path.fullmatch(environ.get("PATH_INFO", ""))
        token = bearer_token(environ) if match else None
        if token is None:
            return None
        ledger = self.ledger
        try:
            key = ledger.authenticate(hash_secret(token))
            if key is None or key.role not in self.balance_roles:
                return None
            customer_id, now = match.group(1), ledger.clock.now()
            balances = ledger.read(lambda uow: queries.customer_balances(uow, now, key.program_id, customer_id),
                                   single_statement=True)
        except Exception:  # noqa: BLE001 - Flask answers it again, with its error handlers
            return None
        return dumps(self.balance_body(balances)).encode()

    def _purchase(self, environ: dict[str, Any], rid: str) -> tuple[StoredAnswer, bool] | None:
        """The plain purchase's stored answer and whether it was replayed, or None to let Flask answer
        (with the body put back for it to read)."""
        if environ.get("QUERY_STRING") or environ.get("SCRIPT_NAME"):
            return None
        content_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        token = bearer_token(environ)
        idempotency_key = environ.get("HTTP_IDEMPOTENCY_KEY")
        length = environ.get("CONTENT_LENGTH", "")
        if (content_type != JSON_MIMETYPE or token is None or not length.isdigit()
                or not 0 < int(length) <= _MAX_PURCHASE_BODY
                or (idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key))):
            return None
        data = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(data)  # for Flask, should it answer after all
        ledger = self.ledger
        try:
            key = ledger.authenticate(hash_secret(token))
            if key is None or key.role not in self.purchase_roles or not data.strip():
                return None
            sent, canonical = json_body(data)
            body = self.purchase_schema.load(sent)
            actor = Principal(program_id=key.program_id, role=key.role, key_id=key.id).actor
            ctx = BookingContext(actor=actor, request_id=rid, idempotency_key=idempotency_key)
            outcome = self.purchase_write(ledger, key.program_id, body, ctx,
                                          fingerprint_of("POST", self.purchase_path, canonical))
        except Exception:  # noqa: BLE001 - Flask parses the body again, or runs the (idempotent) write again
            return None
        return outcome.answer, outcome.replayed
