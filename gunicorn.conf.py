"""gunicorn settings for production: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden from the environment (``GUNICORN_WORKERS``...)
or the command line. Workers are plain sync processes (the app keeps no
state in process, so more workers or more hosts simply add capacity).
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))  # a worker silent this long is killed and replaced
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))  # SIGTERM: finish in-flight requests
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle each worker now and then (a guard against slow leaks), rarely and spread out: a new worker
# imports the whole app (about a second of CPU), and with a small jitter the workers of a busy server
# reach the limit within the same few seconds and restart together (a recycling storm, seen in the
# soak test with the former 2000 +- 200). Half the limit as jitter spreads the restarts over a wide
# window. 0 turns recycling off.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", str(max_requests // 2)))
limit_request_line = 8190
limit_request_fields = 100
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# One JSON object per request; the request id is the one the app returns in X-Request-ID.
access_log_format = (
    '{"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", "query": "%(q)s", '
    '"status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s, "request_id": "%({x-request-id}o)s", '
    '"user_agent": "%(a)s"}'
)


def post_worker_init(worker):
    from marketplace.observability import configure_json_logging

    configure_json_logging()
