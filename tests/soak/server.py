"""gunicorn on a free loopback port, for the HTTP bank test and the HTTP benchmark.

The same approach as the e2e suite's ``gunicorn_server`` fixture
(tests/e2e/conftest.py): production's ``gunicorn.conf.py`` with a few
overrides on the command line, an environment without any of the caller's
marketplace settings (production mode, a fixed SECRET_KEY, sandbox
payments, generous rate limits), the server's output in a log file of its
own, stopped with SIGTERM and then SIGKILL. Loopback only.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"
START_TIMEOUT = 90  # seconds for every worker to boot on a busy machine
SECRET_KEY = "soak-and-bench-secret-key"

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_variables() -> set[str]:
    """Every environment variable marketplace/config.py reads (found in its source, so new ones count)."""
    source = (ROOT / "marketplace" / "config.py").read_text()
    found = set(
        re.findall(r"""(?:environ\.get|environ\[|_int|_flag|_currencies)\(?\s*["']([A-Z][A-Z0-9_]+)["']""", source)
    )
    return found | {"MARKETPLACE_ENV", "DATABASE_URL", "SECRET_KEY", "MARKETPLACE_TEST_CLOCK"}


def server_environment(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any marketplace or gunicorn setting, plus ours."""
    ours = config_variables()
    env = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith("GUNICORN_")}
    env.update(
        {
            "MARKETPLACE_ENV": "production",
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": database_url,
            "MARKETPLACE_PAYMENTS": "sandbox",
            "LOGIN_RATE_LIMIT": "100000 per minute",
            "COMMENT_RATE_LIMIT": "100000 per minute",
            "RATELIMIT_STORAGE_URI": "memory://",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def healthy(url: str) -> bool:
    try:
        with _DIRECT.open(url + "/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` with ``workers`` sync workers on 127.0.0.1."""

    def __init__(
        self,
        database_url: str,
        *,
        workers: int | None = 4,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        name: str = "server",
    ):
        self.database_url = database_url
        self.workers = workers
        self.extra_env = env or {}
        self.extra_args = args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkdtemp(prefix=f"marketplace-{name}-")) / "gunicorn.log"
        self.process: subprocess.Popen | None = None

    # ------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        if not GUNICORN.exists():
            raise RuntimeError(f"gunicorn is not installed in the venv ({GUNICORN})")
        command = [str(GUNICORN), "--config", str(ROOT / "gunicorn.conf.py")]  # production's settings; ours win
        command += ["--bind", f"127.0.0.1:{self.port}", "--chdir", str(ROOT)]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        command += ["--error-logfile", "-", "--capture-output"]
        command += ["--no-control-socket"]  # its default path is shared by every gunicorn of this user
        command += self.extra_args
        return command + ["wsgi:app"]

    def start(self) -> Gunicorn:
        self.launch()
        return self.wait_ready()

    def launch(self) -> Gunicorn:
        """Start the master; ``wait_ready`` waits for its workers (do other set-up meanwhile)."""
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=server_environment(self.database_url, self.extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the caller, which stops the server
        )
        log.close()
        return self

    def wait_ready(self) -> Gunicorn:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + START_TIMEOUT
        while not (healthy(self.url) and self.booted_workers() >= (self.workers or 1)):
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn was not ready within {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        """SIGTERM (gunicorn stops its workers gracefully), then SIGKILL if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the master and its workers
            process.wait(timeout=10)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ workers

    def worker_pids(self) -> list[int]:
        """The master's live child processes (its workers), read from /proc."""
        if self.process is None:
            return []
        master = self.process.pid
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after the last ')'.
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and int(fields[1]) == master and fields[0] != "Z":
                pids.append(int(entry))
        return sorted(pids)

    def booted_workers(self) -> int:
        return len(self.worker_pids())

    # ------------------------------------------------------------ log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"
