"""Shared fixtures. Every test database comes from `alembic upgrade head`.

LEDGER_TEST_BACKEND selects the database: `sqlite` (default) or `postgresql`, the latter
with LEDGER_TEST_PG_URL pointing at a server where we may create databases (scripts/run-tests.sh
starts a throwaway one). Each test gets a fresh database: a copy of a migrated template
(PostgreSQL `CREATE DATABASE ... TEMPLATE`, or a copy of a migrated SQLite file), because the
append-only triggers refuse to let tests clean up by deleting or truncating.
"""
from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger.cli import upgrade_database
from ledger.clock import FixedClock

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
PG_ADMIN_URL = os.environ.get("LEDGER_TEST_PG_URL", "")
OPERATOR_TOKEN = "test-operator-token"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)

if BACKEND == "postgresql" and not PG_ADMIN_URL:
    raise RuntimeError("LEDGER_TEST_BACKEND=postgresql needs LEDGER_TEST_PG_URL")


def pytest_report_header(config) -> str:  # noqa: ANN001
    return f"ledger backend: {BACKEND}"


class DatabaseFactory:
    """Creates fresh, migrated databases from a template built once per test session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.created: list[str] = []
        self.tag = uuid.uuid4().hex[:8]
        if BACKEND == "postgresql":
            self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            self.template = f"ledger_tpl_{self.tag}"
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.template}"'))
                # FILE_COPY (PostgreSQL 15+) copies a small template in a third of WAL_LOG's time.
                version = conn.execute(text("SHOW server_version_num")).scalar_one()
            self.strategy = " STRATEGY FILE_COPY" if int(version) >= 150000 else ""
            upgrade_database(self._url(self.template))
            # A template must have no open connections when it is copied.
        else:
            self.template_file = workdir / "template.db"
            upgrade_database(f"sqlite:///{self.template_file}")

    def _url(self, name: str) -> str:
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def new(self) -> str:
        name = f"ledger_{self.tag}_{uuid.uuid4().hex[:10]}"
        if BACKEND == "postgresql":
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"{self.strategy}'))
            self.created.append(name)
            return self._url(name)
        path = self.workdir / f"{name}.db"
        shutil.copyfile(self.template_file, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        if BACKEND == "postgresql":
            name = make_url(url).database
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        if BACKEND == "postgresql":
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
            self.admin.dispose()


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.close()


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    url = database_factory.new()
    yield url
    database_factory.drop(url)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def app(database_url: str, clock: FixedClock) -> Iterator[Any]:
    from api import create_app

    app = create_app({"DATABASE_URL": database_url, "OPERATOR_TOKEN": OPERATOR_TOKEN, "CLOCK": clock,
                      "DB_POOL_SIZE": 5})
    app.config["TESTING"] = True
    yield app
    app.extensions["ledger"].engines.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@dataclass
class ProgramHandle:
    """A program created through the API, with a helper to call as one of its roles."""

    id: str
    keys: dict[str, str]
    body: dict[str, Any]

    def headers(self, role: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}", **extra}


@pytest.fixture
def make_program(client: Any) -> Callable[..., ProgramHandle]:
    def make(**settings: Any) -> ProgramHandle:
        body = {"name": "Test shop", "currency": "EUR", **settings}
        response = client.post("/v1/programs", json=body, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert response.status_code == 201, response.get_data(as_text=True)
        data = response.get_json()
        return ProgramHandle(id=data["id"], keys=data["api_keys"], body=data)

    return make


@pytest.fixture
def program(make_program: Callable[..., ProgramHandle]) -> ProgramHandle:
    """EUR, 1 point per euro, 2% cashback held 30 days, points available at once."""
    return make_program(cashback_rate_bps=200)


@pytest.fixture
def enrol(client: Any) -> Callable[..., dict]:
    def enrol_(program: ProgramHandle, customer_id: str, **profile: Any) -> dict:
        response = client.put(f"/v1/customers/{customer_id}", json=profile, headers=program.headers("storefront"))
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        return response.get_json()

    return enrol_


@pytest.fixture
def buy(client: Any) -> Callable[..., Any]:
    """POST /v1/purchases as the storefront; returns the response."""

    def buy_(program: ProgramHandle, order_id: str, customer_id: str, amount: int,
             headers: dict[str, str] | None = None, **extra: Any) -> Any:
        body = {"order_id": order_id, "customer_id": customer_id, "amount": amount,
                "currency": program.body["currency"], **extra}
        return client.post("/v1/purchases", json=body, headers=program.headers("storefront", **(headers or {})))

    return buy_


@pytest.fixture
def verify(app: Any) -> Callable[[], Any]:
    """Run the ledger verification on the app's database and assert that it holds."""
    from ledger.services.verify import verify_ledger

    def verify_() -> Any:
        with app.extensions["ledger"].uow() as uow:
            report = verify_ledger(uow)
        assert report.ok, {k: v for k, v in report.to_dict().items() if v}
        return report

    return verify_
