"""The OpenAPI document, generated from the marshmallow schemas and committed as openapi.yaml."""
from __future__ import annotations

import yaml


def render_yaml(api) -> str:  # noqa: ANN001
    return yaml.safe_dump(api.spec.to_dict(), sort_keys=False, allow_unicode=True, width=100)


def main() -> None:
    """`python -m api.openapi > openapi.yaml` regenerates the committed document."""
    import sys

    from . import create_app

    app = create_app({"DATABASE_URL": "sqlite://", "OPERATOR_TOKEN": None})
    sys.stdout.write(render_yaml(app.extensions["ledger_api"]))


if __name__ == "__main__":
    main()
