"""Configuration from the environment."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    database_url: str
    operator_token: str | None
    db_pool_size: int = 10
    # How long a worker trusts an API key it has looked up. Revoking or rotating a key takes effect at
    # once on the worker that did it and within this many seconds on the others; 0 looks up every request.
    auth_cache_seconds: float = 1.0

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            database_url=os.environ.get("LEDGER_DATABASE_URL", "sqlite:///var/ledger.db"),
            operator_token=os.environ.get("LEDGER_OPERATOR_TOKEN") or None,
            db_pool_size=int(os.environ.get("LEDGER_DB_POOL_SIZE", "10")),
            auth_cache_seconds=float(os.environ.get("LEDGER_AUTH_CACHE_SECONDS", "1")),
        )
