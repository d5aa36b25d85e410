"""schemathesis against the committed openapi.yaml, in-process (WSGI), with every caller's credentials.

Callers: the four roles of a program (admin, storefront, app, finance), each with its API key, and
the operator token. Each operation documents who may call it ("Allowed: ..." in its description):

- every allowed caller gets schema-valid and schema-violating requests: explicit coverage cases
  (boundaries, missing and wrong-typed fields, undeclared methods) and a bounded number of Hypothesis
  examples, on a database seeded with customers, purchases, a refund, held / captured / voided
  redemptions and extra API keys; generated ids are sometimes swapped for seeded ones, so requests
  reach existing resources as well as unknown ones (which must answer documented 404 problems);
- every other caller gets a bounded number of Hypothesis examples, all of which must be refused
  (401 for the wrong kind of credential, 403 for a role that may not) before anything is looked up.

Every response: no 5xx; a status code the operation documents explicitly (flask-smorest documents a
`default` problem response on every operation, which would let any status through); the documented
content type; a body that matches the documented schema. Deterministic: Hypothesis is derandomized.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure
from schemathesis.generation.hypothesis.builder import ApiOperationMark
from schemathesis.generation.meta import REQUEST_SHAPE_PROBES, CoverageScenario, coverage_scenario
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import unsupported_method

from tests.conftest import OPERATOR_TOKEN

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
ROLES = ("admin", "storefront", "app", "finance")
OPERATOR = "operator"
CALLERS = (*ROLES, OPERATOR)
# Hypothesis examples per operation and caller, on top of the explicit coverage cases (allowed callers).
MAX_EXAMPLES_ALLOWED = 25
MAX_EXAMPLES_REFUSED = 10

# Seeded values that generated ones are sometimes replaced with. API key ids exist only once the keys
# do: the test swaps these aliases for the real ids.
KNOWN: dict[str, list[str]] = {
    "customer_id": ["cust-1", "cust-2"],
    "order_id": ["order-1", "order-2"],
    "refund_id": ["refund-1"],
    "redemption_id": ["red-held", "red-captured", "red-voided"],
    "key_id": ["seeded-key", "seeded-revoked-key"],
    "currency": ["EUR"],
}


def hypothesis_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples, deadline=None, derandomize=True, database=None, print_blob=False,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


def load_schema(phases: dict[str, Any]) -> Any:
    config = schemathesis.Config.from_dict({
        "generation": {
            "mode": "all",                      # schema-valid and schema-violating requests
            "with-security-parameters": False,  # the Authorization header is the caller's, set below
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}, **phases},
    })
    schema = schemathesis.openapi.from_path(OPENAPI, config=config)

    @schema.hook("flatmap_path_parameters")
    def seeded_path_parameters(context: Any, values: Any) -> st.SearchStrategy:
        return _swap_known(values)

    @schema.hook("flatmap_body")
    def seeded_body(context: Any, values: Any) -> st.SearchStrategy:
        label = context.operation.label
        return _swap_known(values).flatmap(lambda body: st.sampled_from([body, _plausible(label, body)]))

    return schema


def _swap_known(values: Any) -> st.SearchStrategy:
    """Keep each generated string id, or replace it with a seeded one."""
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries({
        name: st.one_of(st.just(value), st.sampled_from(KNOWN[name]))
        if isinstance(value, str) and name in KNOWN else st.just(value)
        for name, value in values.items()
    })


def _integral(value: Any) -> Any:
    """1.0 -> 1: JSON Schema counts 1.0 as an integer, the API does not (StrictInt)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {name: _integral(item) for name, item in value.items()}
    return value


def _plausible(label: str, body: Any) -> Any:
    """The same body, nudged to pass the business rules on the seeded data, so that success answers
    (and their schemas) are exercised too: a seeded customer, reconciled lines, affordable amounts."""
    if not isinstance(body, dict):
        return body
    body = _integral(body)
    body.pop("occurred_at", None)  # default now: a generated instant may lie in the future
    if isinstance(body.get("customer_id"), str):
        body["customer_id"] = "cust-1"  # 1,000 points available, less what the seed holds
    amount = body.get("amount")
    if label in ("POST /v1/purchases", "POST /v1/checkout/quote"):
        if "currency" in body:
            body["currency"] = "EUR"
        try:
            lines = [{**line, "discount": min(line.get("discount", 0), line["quantity"] * line["unit_price"])}
                     for line in body.get("lines", [])]
            total = sum(line["quantity"] * line["unit_price"] - line["discount"] for line in lines)
            total += body.get("tax", 0) + body.get("shipping", 0)
        except (KeyError, TypeError, AttributeError):
            return body
        if "lines" in body and 1 <= total <= 10**14:
            body["lines"], body["amount"] = lines, total
        else:
            body.pop("lines", None)
    elif label == "POST /v1/purchases/{order_id}/refunds" and isinstance(amount, int):
        body.pop("lines", None)  # the seeded orders have none
        body["amount"] = 1 + amount % 500
    elif label == "POST /v1/redemptions" and isinstance(amount, int):
        body["amount"] = 1 + amount % 50
        if isinstance(body.get("order_amount"), int):
            body["order_amount"] = max(body["order_amount"], body["amount"])
    elif label == "POST /v1/redemptions/{redemption_id}/capture" and isinstance(amount, int):
        body["amount"] = amount % 11  # the seeded holds are 10 points
    return body


allowed_schema = load_schema({})
refused_schema = load_schema({"examples": {"enabled": False}, "coverage": {"enabled": False}})


def allowed_callers(operation: Any) -> tuple[str, ...]:
    """From the operation's description, which `api.http.requires` writes: "Allowed: roles a, b." """
    description = operation.definition.raw.get("description", "")
    match = re.search(r"^Allowed: (?:roles ([a-z, ]+)|(the operator token))\.$", description, re.MULTILINE)
    assert match, f"{operation.label} does not say who may call it"
    if match.group(2):
        return (OPERATOR,)
    roles = tuple(match.group(1).split(", "))
    assert set(roles) <= set(ROLES), (operation.label, roles)
    return roles


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """schemathesis collects one item per operation; this adds one per caller."""
    operation = ApiOperationMark.get(metafunc.function)
    if operation is None or "caller" not in metafunc.fixturenames:
        return
    allowed = allowed_callers(operation)
    if metafunc.definition.name == "test_allowed_callers":
        callers = [caller for caller in CALLERS if caller in allowed]
    else:
        callers = [caller for caller in CALLERS if caller not in allowed]
    metafunc.parametrize("caller", callers)


# -- checks -------------------------------------------------------------------------------------------

def status_code_documented_explicitly(ctx: Any, response: Any, case: Any) -> bool | None:
    """`status_code_conformance` accepts anything when `default` is documented: every operation has it.

    An undeclared method (a coverage probe) must answer 405, except OPTIONS, which Flask answers itself
    (200 with `Allow`, after authentication). The other requests malformed on purpose (a wrong content
    type) are left to the checks made for them, as `status_code_conformance` does."""
    scenario = coverage_scenario(case)
    if scenario == CoverageScenario.UNSPECIFIED_HTTP_METHOD:
        if response.request.method != "OPTIONS" and response.status_code != 405:
            raise UndefinedStatusCode(
                operation=case.operation.label, status_code=response.status_code, defined_status_codes=["405"],
                allowed_status_codes=[405], title="Undeclared method not answered 405",
                message=f"{response.request.method} answered {response.status_code}, expected 405",
            )
        return None
    if scenario in REQUEST_SHAPE_PROBES:
        return None
    documented = [code for code in case.operation.responses.status_codes if code != "default"]
    allowed = {int(code) for code in documented if code.isdigit()}
    ranges = {code[0] for code in documented if code.upper().endswith("XX")}
    if response.status_code not in allowed and str(response.status_code)[0] not in ranges:
        raise UndefinedStatusCode(
            operation=case.operation.label, status_code=response.status_code, defined_status_codes=documented,
            allowed_status_codes=sorted(allowed), title="Status code documented only by `default`",
            message=f"Received: {response.status_code}\nDocumented explicitly: {', '.join(documented)}",
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    status_code_documented_explicitly,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,  # 405 with an Allow header (RFC 9110)
]


class WrongAnswerToCaller(Failure):
    """The caller was refused though the document allows it, or let through though it does not."""

    def __init__(self, *, operation: str, message: str) -> None:
        super().__init__(operation=operation, title="Caller not treated as documented", message=message)


def problem_code(response: Any) -> str | None:
    try:
        body = response.json()
    except Exception:  # noqa: BLE001
        return None
    return body.get("code") if isinstance(body, dict) else None


def not_refused(caller: str) -> Any:
    def check(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code in (401, 403):
            raise WrongAnswerToCaller(operation=case.operation.label,
                                      message=f"{caller} is allowed, but was answered {response.status_code}")
        return None

    return check


def refused(caller: str) -> Any:
    def check(ctx: Any, response: Any, case: Any) -> bool | None:
        # The wrong kind of credential (the operator token on a program's API, a program's key on
        # POST /v1/programs) is 401; a role that may not is 403.
        operator_only = allowed_callers(case.operation) == (OPERATOR,)
        status = 401 if (caller == OPERATOR) != operator_only else 403
        if response.status_code == status:
            return None
        # Routing answers before authentication: an id that decodes to a path of another shape.
        if problem_code(response) in ("not_found", "method_not_allowed"):
            return None
        raise WrongAnswerToCaller(operation=case.operation.label,
                                  message=f"{caller} may not call this: expected {status}, "
                                          f"got {response.status_code}")

    return check


# -- fixtures -----------------------------------------------------------------------------------------

@dataclass
class Seed:
    """What exists before the fuzzing starts."""

    tokens: dict[str, str]
    key_ids: dict[str, str]


@pytest.fixture
def tokens(program: Any) -> dict[str, str]:
    return {**program.keys, OPERATOR: OPERATOR_TOKEN}


@pytest.fixture
def seed(client: Any, program: Any, enrol: Any, buy: Any, tokens: dict[str, str]) -> Seed:
    assert program.body["currency"] == "EUR"
    storefront, admin = program.headers("storefront"), program.headers("admin")
    for customer in KNOWN["customer_id"]:
        enrol(program, customer, email=f"{customer}@example.com")
    for order, customer, amount in (("order-1", "cust-1", 100_000), ("order-2", "cust-2", 50_000)):
        response = buy(program, order, customer, amount)
        assert response.status_code == 201, response.get_data(as_text=True)
    response = client.post("/v1/purchases/order-2/refunds", json={"refund_id": "refund-1", "amount": 1_000},
                           headers=storefront)
    assert response.status_code == 201, response.get_data(as_text=True)
    for redemption in KNOWN["redemption_id"]:
        response = client.post("/v1/redemptions", headers=storefront, json={
            "redemption_id": redemption, "customer_id": "cust-1", "asset": "points", "amount": 10})
        assert response.status_code == 201, response.get_data(as_text=True)
    assert client.post("/v1/redemptions/red-captured/capture", json={}, headers=storefront).status_code == 200
    assert client.post("/v1/redemptions/red-voided/void", json={}, headers=storefront).status_code == 200
    key_ids = {}
    for alias, key_role in zip(KNOWN["key_id"], ("app", "finance")):
        response = client.post("/v1/api-keys", json={"role": key_role, "name": alias}, headers=admin)
        assert response.status_code == 201, response.get_data(as_text=True)
        key_ids[alias] = response.get_json()["id"]
    response = client.delete(f"/v1/api-keys/{key_ids['seeded-revoked-key']}", headers=admin)
    assert response.status_code == 200, response.get_data(as_text=True)
    return Seed(tokens=tokens, key_ids=key_ids)


# -- tests --------------------------------------------------------------------------------------------

@hypothesis_settings(MAX_EXAMPLES_ALLOWED)
@allowed_schema.parametrize()
def test_allowed_callers(case: Any, app: Any, seed: Seed, caller: str) -> None:
    key_id = (case.path_parameters or {}).get("key_id")
    if key_id in seed.key_ids:
        case.path_parameters["key_id"] = seed.key_ids[key_id]
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {seed.tokens[caller]}"},
                           checks=[*CHECKS, not_refused(caller)])


@hypothesis_settings(MAX_EXAMPLES_REFUSED)
@refused_schema.parametrize()
def test_refused_callers(case: Any, app: Any, tokens: dict[str, str], caller: str) -> None:
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {tokens[caller]}"},
                           checks=[*CHECKS, refused(caller)])
