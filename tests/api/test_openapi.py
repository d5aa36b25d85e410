"""openapi.yaml is generated from the schemas and committed: this fails when it drifts."""
from __future__ import annotations

from pathlib import Path

import yaml

from api.openapi import render_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_schemas(app):
    generated = render_yaml(app.extensions["ledger_api"])
    committed = (ROOT / "openapi.yaml").read_text()
    assert generated == committed, "openapi.yaml is stale: run `make openapi` and commit it"


def test_every_error_response_is_a_problem(app):
    spec = yaml.safe_load(render_yaml(app.extensions["ledger_api"]))
    components = spec["components"]["responses"]
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status != "default" and int(status) < 400:
                    continue
                if "$ref" in response:
                    response = components[response["$ref"].rsplit("/", 1)[1]]
                content = response["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
                checked += 1
    assert checked > 40
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])


def test_served_document_is_the_committed_one(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == (ROOT / "openapi.yaml").read_text()
