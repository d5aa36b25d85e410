"""Gunicorn settings for the ledger service (used by `make run`, the Dockerfile and `make bench`)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# 3 processes x 2 threads gave the lowest purchase p99 on the 2-core benchmark machine, with
# throughput within noise of 2x4, 3x3, 4x2 and 4x4 (bench/run.py). Threads overlap database waits;
# more of them per process only add GIL contention. Scale processes with cores.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "2"))
# Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new connections over the
# workers. With one shared socket, whichever worker wakes first accepts a burst of keep-alive
# connections: `make bench` saw all 16 of wrk's land on one worker (one process, one GIL) in several
# runs, halving throughput and leaving the other workers idle. The cost: connections still
# waiting in a dying worker's accept queue are reset (clients retry; writes are idempotent), and any
# process of the same user may bind the port too. LEDGER_REUSE_PORT=0 turns it off.
reuse_port = os.environ.get("LEDGER_REUSE_PORT", "1") != "0"
timeout = 60
accesslog = "-"
errorlog = "-"
# The same access line as gunicorn's own logger, its fields computed only when the format uses them.
logger_class = "api.access_log.AccessLogger"
