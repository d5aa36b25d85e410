"""One module per resource."""
from __future__ import annotations

from flask import Flask

from . import analytics, api_keys, customers, earning, engagement, finance, health, ledger, programs, purchases, redemptions


def register(app: Flask, api) -> None:  # noqa: ANN001
    health.register(app, api)
    for module in (programs, api_keys, customers, purchases, redemptions, earning, engagement, ledger, finance, analytics):
        api.register_blueprint(module.blp)
