"""The request pipeline shared by every route: request id, authentication and roles,
strict JSON parsing, validation errors as problems, and idempotent writes."""
from __future__ import annotations

import functools
import hashlib
import inspect
import hmac
import json
import re
import random
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from typing import Any, Callable

import flask_smorest
import marshmallow as ma
from flask import Response, current_app, g, request
from webargs import core
from webargs.flaskparser import FlaskParser

from ledger.domain.errors import BusinessRuleViolation, LedgerError, ValidationFailed
from ledger.services.ports import BookingContext, StoredAnswer
from ledger.services.programs import hash_secret
from ledger.services.writes import WriteOutcome, WriteRequest, run_write, transact

from .errors import PROBLEM_MIMETYPE, ApiProblem, dumps, ledger_error_body

JSON_MIMETYPE = "application/json"
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,80}")
OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    program_id: str | None
    role: str
    key_id: str | None

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}" if self.key_id else "operator"


def flatten_errors(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """marshmallow's nested messages -> [{field: "lines.0.quantity", message}]."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out += flatten_errors(value, name)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out += [{"field": prefix or "body", "message": m} for m in messages]
        else:
            for m in messages:
                out += flatten_errors(m, prefix)
    else:
        out.append({"field": prefix or "body", "message": str(messages)})
    return out


class ProblemParser(FlaskParser):
    """Reads the body parsed (strictly) by `parse_body`, and raises validation errors as problems."""

    def _get_schema(self, argmap, req):  # noqa: ANN001, ANN202
        """One instance per schema class (webargs would build one per request; loading keeps no state)."""
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            return _schema_instance(argmap)
        return super()._get_schema(argmap, req)

    def parse(self, argmap, req=None, *, location=None, validate=None, **kwargs):  # noqa: ANN001, ANN201
        """A request without a query string skips loading query arguments that would load to nothing."""
        if (location == "query" and validate is None and isinstance(argmap, type) and not request.query_string
                and _loads_nothing_from_empty(argmap)):
            return {}
        return super().parse(argmap, req, location=location, validate=validate, **kwargs)

    def load_json(self, req, schema):  # noqa: ANN001, ANN201
        return g.get("json_body", core.missing)

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):  # noqa: ANN001
        messages = error.messages
        if isinstance(messages, dict) and len(messages) == 1 and next(iter(messages)) in {"json", "query", "view_args", "path", "headers"}:
            messages = next(iter(messages.values()))
        raise ValidationFailed(flatten_errors(messages))


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ProblemParser()

    def arguments(self, schema, *, location="json", **kwargs):  # noqa: ANN001, ANN201
        """A JSON body may also be malformed (400) or not JSON at all (415): documented as problems."""
        decorator = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return decorator

        def with_body_errors(func):  # noqa: ANN001, ANN202
            wrapper = decorator(func)
            responses = wrapper._apidoc.setdefault("response", {}).setdefault("responses", {})
            responses.setdefault(400, []).append("BAD_REQUEST")
            responses.setdefault(415, []).append("UNSUPPORTED_MEDIA_TYPE")
            return wrapper

        return with_body_errors


@functools.cache
def _schema_instance(schema: type[ma.Schema]) -> ma.Schema:
    return schema()


@functools.cache
def _loads_nothing_from_empty(argmap: type) -> bool:
    """True when loading `{}` with this schema class always gives `{}`: nothing required, no defaults,
    no pre/post-load or schema-level validation hooks."""
    if not issubclass(argmap, ma.Schema):
        return False
    schema = _schema_instance(argmap)
    if any(schema._hooks.values()):
        return False
    try:
        return schema.load({}) == {}
    except ma.ValidationError:
        return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body() -> None:
    """Strict JSON: 415 for a body that is not JSON, 400 for malformed JSON (huge integers included)."""
    data = request.get_data(cache=True)
    if not data.strip():
        g.json_body = {}
        g.body_canonical = "{}"
        return
    mimetype = request.mimetype or ""
    if not (mimetype == JSON_MIMETYPE or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise ApiProblem(415, "unsupported_media_type", "Unsupported media type",
                         "send the body as application/json")
    g.json_body, g.body_canonical = json_body(data)


def json_body(data: bytes) -> tuple[Any, str]:
    """A non-blank body parsed strictly (400 `malformed_json` otherwise), and its canonical JSON."""
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiProblem(400, "malformed_json", "Malformed JSON", f"the body is not valid JSON: {exc}") from None
    return body, json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def authenticate(app: Any, req: Any, ctx: Any) -> None:
    """Every route declares who may call it (`requires`); checked before anything is parsed.
    Takes the app, request and `g` themselves: each proxy lookup costs a context-variable read."""
    view = app.view_functions.get(req.endpoint or "")
    roles: tuple[str, ...] | None = getattr(view, "_required_roles", None)
    if roles is None:
        return
    token = bearer_token(req.environ)
    if token is None:
        raise _unauthorized("send Authorization: Bearer <api key>")
    if roles == (OPERATOR,):
        expected = app.config["LEDGER_SETTINGS"].operator_token
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise _unauthorized("this call needs the operator token")
        ctx.principal = Principal(program_id=None, role=OPERATOR, key_id=None)
        return
    key = app.extensions["ledger"].authenticate(hash_secret(token))
    if key is None:
        raise _unauthorized("unknown or revoked API key")
    ctx.principal = Principal(program_id=key.program_id, role=key.role, key_id=key.id)
    if key.role not in roles:
        raise ApiProblem(403, "forbidden", "Forbidden", f"the {key.role} role may not do this")


def bearer_token(environ: dict[str, Any]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case), or None."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def request_id(environ: dict[str, Any]) -> str:
    """The caller's X-Request-Id when well formed, else a new one."""
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    # A correlation id, not a secret: random.getrandbits is enough (and no system call per request).
    return incoming if REQUEST_ID.fullmatch(incoming) else f"req_{random.getrandbits(64):016x}"


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def before_request() -> None:
    req, ctx = request._get_current_object(), g._get_current_object()
    ctx.request_id = request_id(req.environ)
    authenticate(current_app._get_current_object(), req, ctx)
    if req.method in ("POST", "PUT", "PATCH"):
        parse_body()


def after_request(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    return response


def requires(*roles: str) -> Callable:
    """Innermost decorator of a view: the roles that may call it (see ARCHITECTURE.md §4)."""

    def decorator(func: Callable) -> Callable:
        func._required_roles = roles  # copied outward by functools.wraps in every smorest decorator
        doc = func.__dict__.setdefault("_apidoc", {})
        manual = doc.setdefault("manual_doc", {})
        manual["security"] = [{"operatorToken": []}] if roles == (OPERATOR,) else [{"apiKey": []}]
        who = "the operator token" if roles == (OPERATOR,) else f"roles {', '.join(roles)}"
        func.__doc__ = f"{inspect.cleandoc(func.__doc__ or '')}\n\nAllowed: {who}."
        responses = doc.setdefault("response", {}).setdefault("responses", {})
        responses.setdefault(401, []).append("UNAUTHORIZED")
        if roles != (OPERATOR,):
            responses.setdefault(403, []).append("FORBIDDEN")
        return func

    return decorator


def principal() -> Principal:
    return g.principal


def program_id() -> str:
    return g.principal.program_id


def booking_context() -> BookingContext:
    return BookingContext(actor=g.principal.actor, request_id=g.request_id, idempotency_key=idempotency_key())


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ValidationFailed([{"field": "Idempotency-Key", "message": "1 to 255 visible ASCII characters"}])
    return key


def fingerprint() -> str:
    """Method, path and SHA-256 of the canonical JSON of the body as sent."""
    return fingerprint_of(request.method, request.path, g.get("body_canonical", "{}"))


def fingerprint_of(method: str, path: str, body_canonical: str) -> str:
    body_hash = hashlib.sha256(body_canonical.encode()).hexdigest()
    return hashlib.sha256(f"{method} {path}\n{body_hash}".encode()).hexdigest()


_SCALARS = frozenset({str, int, bool, type(None), datetime, date})
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None
    return names


def plain(obj: Any) -> Any:
    """A dataclass (nested in lists and dicts too) as dicts, for a schema to dump. Unlike
    `dataclasses.asdict` it copies nothing else: the dump only reads the values."""
    cls = type(obj)
    if cls in _SCALARS:
        return obj
    names = _FIELD_NAMES[cls] if cls in _FIELD_NAMES else _field_names(cls)
    if names is not None:
        return {name: plain(getattr(obj, name)) for name in names}
    if isinstance(obj, (list, tuple)):
        return [plain(item) for item in obj]
    if isinstance(obj, dict):
        return {key: plain(value) for key, value in obj.items()}
    return obj


@functools.cache
def from_dataclasses(schema: type[ma.Schema]) -> ma.Schema:
    """An instance of `schema` that dumps a use case's dataclass result (nested dataclasses included).
    One per schema, made once: building a schema class per request cost more than the dump."""

    class DataclassSchema(schema):  # type: ignore[misc, valid-type]
        def dump(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
            return super().dump(plain(obj), *args, **kwargs)

    return DataclassSchema()


class HandBuilt:
    """A route's answer built by hand in place of its schema's dump, for the hottest writes; a test
    holds each equal to the schema's dump."""

    def __init__(self, dump: Callable[[Any], Any]) -> None:
        self.dump = dump


@functools.cache
def with_balances(schema: type[ma.Schema]) -> ma.Schema:
    """An instance of `schema` that dumps a plain dict whose `balances` is a dataclass (or None)."""

    class BalancesSchema(schema):  # type: ignore[misc, valid-type]
        def dump(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
            balances = obj.get("balances")
            if balances is not None and not isinstance(balances, dict):
                obj = {**obj, "balances": plain(balances)}
            return super().dump(obj, *args, **kwargs)

    return BalancesSchema()


def json_response(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status=status, mimetype=JSON_MIMETYPE)


def answer_mimetype(answer: StoredAnswer) -> str:
    return PROBLEM_MIMETYPE if answer.status >= 400 else JSON_MIMETYPE


def answer_response(answer: StoredAnswer, replayed: bool) -> Response:
    response = Response(answer.body, status=answer.status, mimetype=answer_mimetype(answer))
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def render_error(error: BusinessRuleViolation, request_id: str | None = None) -> StoredAnswer:
    status, body = ledger_error_body(error, request_id)
    return StoredAnswer(status, dumps(body))


def idempotent_write(action: Callable[[Any], Any], schema: ma.Schema | HandBuilt, status: int,
                     natural_key: tuple[str, str] | None = None,
                     on_conflict: Callable[[str, str], Exception] | None = None,
                     status_of: Callable[[Any], int] | None = None) -> Response:
    """Run a write once: replays answer with the first status and body, byte for byte.
    `status_of` picks the success status from the result (202 for an adjustment awaiting approval)."""
    outcome = run_idempotent_write(current_app.extensions["ledger"], WriteRequest(
        program_id=program_id(), fingerprint=fingerprint(), idempotency_key=idempotency_key(),
        natural_key=natural_key, on_conflict=on_conflict), action, schema, status, status_of)
    return answer_response(outcome.answer, outcome.replayed)


def run_idempotent_write(ledger: Any, request_: WriteRequest, action: Callable[[Any], Any],
                         schema: ma.Schema | HandBuilt, status: int,
                         status_of: Callable[[Any], int] | None = None, request_id: str | None = None) -> WriteOutcome:
    """`idempotent_write` without Flask's request: the outcome, its answer rendered by `schema` (a
    refusal's problem names `request_id`, by default the current request's)."""
    return run_write(
        ledger.uow, ledger.clock, request_, action,
        render=lambda result: StoredAnswer(status_of(result) if status_of else status, dumps(schema.dump(result))),
        render_error=lambda error: render_error(error, request_id), is_retryable=ledger.uow.is_retryable,
    )


def read(action: Callable[[Any], Any], single_statement: bool = False) -> Any:
    """`LedgerService.read` of this app."""
    return current_app.extensions["ledger"].read(action, single_statement)


def write(action: Callable[[Any], Any]) -> Any:
    """A write that is idempotent by nature (PUT, PATCH): one committed transaction, retried on lock conflicts."""
    ledger = current_app.extensions["ledger"]
    return transact(ledger.uow, action, ledger.uow.is_retryable)
