"""Gunicorn settings for the ledger service (used by `make run`, the Dockerfile and `make bench`)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# 3 processes x 2 threads gave the lowest purchase p99 on the 2-core benchmark machine, with
# throughput within noise of 2x4, 3x3, 4x2 and 4x4 (bench/run.py). Threads overlap database waits;
# more of them per process only add GIL contention. Scale processes with cores.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "2"))
timeout = 60
accesslog = "-"
errorlog = "-"
