"""The `ledger` console script: migrations, programs, jobs."""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from .clock import FixedClock, SystemClock


def _database_url(args: argparse.Namespace) -> str:
    return args.database_url or os.environ.get("LEDGER_DATABASE_URL", "sqlite:///var/ledger.db")


def migrations_dir() -> Path:
    env = os.environ.get("LEDGER_MIGRATIONS_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[1] / "migrations", Path.cwd() / "migrations"]
    for path in candidates:
        if (path / "env.py").exists():
            return path
    raise SystemExit("cannot find the migrations folder; set LEDGER_MIGRATIONS_DIR")


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` with Alembic: the only way a database is ever created."""
    from alembic import command
    from alembic.config import Config

    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)


def _clock(args: argparse.Namespace):  # noqa: ANN202
    if getattr(args, "as_of", None):
        at = datetime.fromisoformat(args.as_of)
        if at.tzinfo is None:
            raise SystemExit("--as-of needs an offset, e.g. 2026-12-01T00:00:00+00:00")
        return FixedClock(at)
    return SystemClock()


def _factory(args: argparse.Namespace):  # noqa: ANN202
    from .storage.engine import make_engines
    from .storage.uow import SqlUnitOfWorkFactory

    return SqlUnitOfWorkFactory(make_engines(_database_url(args), pool_size=2))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    upgrade_database(_database_url(args), args.revision)
    print(f"database at {args.revision}")
    return 0


def cmd_programs_create(args: argparse.Namespace) -> int:
    from .domain.money import is_valid_currency
    from .domain.programs import ProgramSettings
    from .services.programs import create_program
    from .services.writes import transact

    if not is_valid_currency(args.currency):
        print(f"unknown currency {args.currency!r}: use a current ISO 4217 code", file=sys.stderr)
        return 2
    settings = ProgramSettings(name=args.name, currency=args.currency, timezone=args.timezone)
    factory = _factory(args)
    clock = _clock(args)
    created = transact(factory, lambda uow: create_program(uow, clock, settings), factory.is_retryable)
    print(json.dumps({
        "id": created.program.id, **created.program.settings.to_dict(),
        "created_at": created.program.created_at.isoformat(),
        "api_keys": {role: issued.secret for role, issued in created.keys.items()},
    }, indent=2))
    return 0


def cmd_jobs_run(args: argparse.Namespace) -> int:
    from .services.releases import run_jobs

    factory = _factory(args)
    done = run_jobs(factory, _clock(args), is_retryable=factory.is_retryable)
    print(json.dumps({"job": "run", **done}))
    return 0


def cmd_jobs_purge_keys(args: argparse.Namespace) -> int:
    from .services.retention import purge_idempotency_keys

    factory, clock = _factory(args), _clock(args)
    try:
        deleted = purge_idempotency_keys(factory, clock, args.older_than_days, is_retryable=factory.is_retryable)
    except ValueError as exc:  # fewer than one day
        raise SystemExit(f"--older-than-days: {exc}") from None
    print(json.dumps({"job": "purge-keys", "deleted": deleted}))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .services.verify import verify_ledger

    with _factory(args)() as uow:
        report = verify_ledger(uow, all_seals=args.all_seals)
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return 0 if report.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    """Stream a program's entries to stdout (or --output) in constant memory."""
    from .services.books import export_chunks, export_entries

    filters = {}
    for name in ("from", "to"):
        value = getattr(args, name.replace("from", "from_"))
        if value:
            at = datetime.fromisoformat(value)
            if at.tzinfo is None:
                raise SystemExit(f"--{name} needs an offset, e.g. 2026-12-01T00:00:00+00:00")
            filters[name] = at
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        with _factory(args)() as uow:
            if uow.programs.get(args.program) is None:
                print(f"no program {args.program!r}", file=sys.stderr)
                return 2
            for chunk in export_chunks(export_entries(uow, args.program, filters), args.format):
                out.write(chunk)
    finally:
        if args.output:
            out.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description="Loyalty ledger administration")
    parser.add_argument("--database-url", help="default: $LEDGER_DATABASE_URL or sqlite:///var/ledger.db")
    sub = parser.add_subparsers(dest="group", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="command", required=True)
    upgrade = db.add_parser("upgrade", help="apply the Alembic migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)

    programs = sub.add_parser("programs", help="programs").add_subparsers(dest="command", required=True)
    create = programs.add_parser("create", help="create a program and print its API keys as JSON")
    create.add_argument("--name", required=True)
    create.add_argument("--currency", required=True)
    create.add_argument("--timezone", default="UTC")
    create.set_defaults(func=cmd_programs_create)

    jobs = sub.add_parser("jobs", help="periodic jobs").add_subparsers(dest="command", required=True)
    run = jobs.add_parser("run", help="release pending value whose return window has passed and expire "
                                      "lapsed holds (idempotent; safe to run from cron in several processes)")
    run.add_argument("--as-of", help="run as of this instant (ISO 8601 with offset)")
    run.set_defaults(func=cmd_jobs_run)
    purge = jobs.add_parser("purge-keys", help="delete Idempotency-Key records older than N days (natural keys "
                                               "are kept: a late retry still replays by its order id)")
    purge.add_argument("--older-than-days", type=int, required=True, help="at least 1")
    purge.add_argument("--as-of", help="count the days back from this instant (ISO 8601 with offset)")
    purge.set_defaults(func=cmd_jobs_purge_keys)
    verify = sub.add_parser("verify", help="recompute the hash chains and seals, and check that the ledger "
                                          "balances and cached balances equal entries")
    verify.add_argument("--all-seals", action="store_true",
                        help="recompute every seal, not only each program's latest")
    verify.set_defaults(func=cmd_verify)
    export = sub.add_parser("export", help="stream a program's ledger entries as NDJSON or CSV (constant memory)")
    export.add_argument("--program", required=True, help="program id")
    export.add_argument("--format", choices=("ndjson", "csv"), default="ndjson")
    export.add_argument("--from", dest="from_", help="recorded at or after (ISO 8601 with offset)")
    export.add_argument("--to", help="recorded before (ISO 8601 with offset)")
    export.add_argument("--output", help="file to write (default stdout)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `ledger verify | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail too
        return 1


if __name__ == "__main__":
    sys.exit(main())
