"""Gunicorn settings for the ledger service (used by `make run` and the Dockerfile)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = 4
timeout = 60
accesslog = "-"
errorlog = "-"
