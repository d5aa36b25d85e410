"""The lazy access log (api/access_log.py) writes exactly gunicorn's line, field by field."""
from __future__ import annotations

import base64
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from freezegun import freeze_time
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from api.access_log import AccessLogger, LazyAtoms

DEFAULT_FORMAT = Config().access_log_format
CUSTOM_FORMAT = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s %(H)s '
                 '%(T)s %(D)s %(M)s %(L)s %(p)s %({x-request-id}i)s %({X-REQUEST-ID}o)s %({content-type}o)s '
                 '%({raw_uri}e)s %({nope}i)s %({nope}o)s %({nope}e)s %(zz)s %({weird}x)s')


def _exchange(**overrides) -> tuple:  # noqa: ANN003
    """A request as gunicorn hands it to the logger: its response, request, environ and duration."""
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": "/v1/purchases?x=1", "PATH_INFO": "/v1/purchases",
               "QUERY_STRING": "x=1", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.7",
               "HTTP_USER_AGENT": 'shop "checkout" 2.0', "HTTP_REFERER": "https://shop.example/cart",
               "HTTP_X_REQUEST_ID": "req_abc", "wsgi.url_scheme": "http"}
    environ.update(overrides.pop("environ", {}))
    req = SimpleNamespace(headers=[("HOST", "ledger"), ("X-REQUEST-ID", "req_abc"), ("USER-AGENT", 'shop "checkout" 2.0')])
    resp = SimpleNamespace(status="201 CREATED", sent=512,
                           headers=[("Content-Type", "application/json"), ("X-Request-Id", "req_abc")])
    for name, value in overrides.items():
        setattr(resp, name, value)
    return resp, req, environ, timedelta(seconds=1, microseconds=23_456)


CASES = {
    "a purchase": _exchange(),
    "no body sent, numeric status": _exchange(sent=None, status=204),
    "basic auth user, no referer or agent": _exchange(environ={
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"ops:secret").decode(),
        "HTTP_REFERER": None, "HTTP_USER_AGENT": None}),
}


@pytest.mark.parametrize("case", CASES)
@freeze_time("2026-11-27 08:15:00")
def test_every_field_and_the_whole_line_equal_gunicorns(case: str) -> None:
    resp, req, environ, took = CASES[case]
    for k in [k for k, v in list(environ.items()) if v is None]:
        del environ[k]
    gunicorn_logger = Logger(Config())
    expected = SafeAtoms(gunicorn_logger.atoms(resp, req, environ, took))
    lazy = LazyAtoms(gunicorn_logger, resp, req, environ, took)
    keys = [*expected.keys(), "{X-Request-Id}i", "{HOST}i", "{Content-Type}o", "{RAW_URI}e", "{nope}i", "zz"]
    for key in keys:
        assert lazy[key] == expected[key], key
    assert lazy["a"] == expected["a"] and ('\\"' in lazy["a"] or "HTTP_USER_AGENT" not in environ)
    for fmt in (DEFAULT_FORMAT, CUSTOM_FORMAT):
        assert fmt % lazy == fmt % expected


def test_the_logger_writes_gunicorns_line() -> None:
    config = Config()
    config.set("accesslog", "-")
    logger = AccessLogger(config)
    resp, req, environ, took = _exchange()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.access_log.addHandler(handler)
    with freeze_time("2026-11-27 08:15:00"):  # the fields are computed as the line is formatted
        logger.access(resp, req, environ, took)
        expected = DEFAULT_FORMAT % SafeAtoms(Logger(config).atoms(resp, req, environ, took))
        assert [record.getMessage() for record in records] == [expected]
    assert expected.startswith("10.0.0.7 - - [27/Nov/2026:08:15:00")
    assert '"POST /v1/purchases?x=1 HTTP/1.1" 201 512 "https://shop.example/cart" "shop \\"checkout\\" 2.0"' in expected


def test_gunicorn_uses_it() -> None:
    from pathlib import Path

    settings: dict = {}
    exec(Path(__file__).resolve().parents[2].joinpath("gunicorn.conf.py").read_text(), settings)  # noqa: S102
    assert settings["logger_class"] == "api.access_log.AccessLogger"
