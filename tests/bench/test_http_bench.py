"""Benchmark: HTTP throughput through gunicorn on PostgreSQL, each route beside a hello-world.

Run by ``make bench`` (BENCH_DATABASE_URL must be PostgreSQL; the Makefile
installs Debian's ``wrk`` when it is missing). The app is served by
``gunicorn -c gunicorn.conf.py wsgi:app`` — production's settings (its
worker count, sync workers, JSON access log), without worker recycling
(``--max-requests 0``) — in production mode on the
bench database, with ``MARKETPLACE_BENCH_ROUTES=1`` so that the same app also
serves ``GET /bench/hello`` (a route that exists only with that flag). wrk
runs with 16 connections (``wrk -t2 -c16 --latency``) for BENCH_HTTP_SECONDS
each (default 8, after 2 s of warm-up) against:

- ``GET /api/v1/pools/{id}`` (Bearer token), a pool with a supplier's bid
  and 40 pledges of 20 members;
- ``GET /pools/{id}``, the same pool's page, as an anonymous visitor;
- ``POST /api/v1/pools/{id}/pledges`` (tests/bench/wrk_pledge.lua: JSON, a
  Bearer token and a unique ``Idempotency-Key`` per request) on a pool of its
  own, 16 members in turn pledging 1 x 1.00 each time;

each against a hello-world baseline measured in the same minute, in
BENCH_HTTP_ROUNDS rounds (default 2) of four runs of BENCH_HTTP_SECONDS each,
in the order hello, route, route, hello (ABBA): this machine's speed
drifts by a third within a minute, and a drift that is steady over a round
weighs on both sides alike, where a hello run then a route run would charge
it all to one. A round's ratio is its route requests over its hello
requests; a route's ratio is the pooled one (all its rounds' route requests
over all their hello requests), each round's is listed too; p99 is the worst
run's (runs are kept whole-length: in a shorter run one stall of the machine,
a checkpoint's fsync say, would be a larger share of the slowest percent).
Targets: API GET >= 0.5 x hello-world requests/s, pool page >= 0.3 x, p99
latency < 100 ms for the three. It prints the figures and asserts only
soundness, never a timing: every answer 2xx, no socket error, each pledge
wrk sent made exactly one pledge, one idempotency record and one hold, and
the ledger invariants hold afterwards.

Beside requests/s, each run reports the CPU time one request costs (the
gunicorn workers, the database's backends and wrk, read from /proc): unlike
requests/s, that hardly depends on what else the machine is running, and
hello-world's CPU over the route's ("cpu x") is the ratio an idle machine
would show.

``BENCH_HTTP_PROFILE=1`` also measures each route in this process (Flask's
test client, same database): CPU ms per request, the SQL of one request, and
a cProfile (CPU time) of where it goes.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import resource
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text

from marketplace.extensions import db
from tests.soak.server import Gunicorn

WRK = shutil.which("wrk")
SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "8"))
WARMUP = 2
ROUNDS = max(1, int(os.environ.get("BENCH_HTTP_ROUNDS", "2")))
CONNECTIONS = 16
THREADS = 2
PLEDGE_SCRIPT = Path(__file__).with_name("wrk_pledge.lua")
PROFILE = os.environ.get("BENCH_HTTP_PROFILE", "") not in ("", "0")
TARGETS = {"api_get": 0.5, "pool_page": 0.3, "pledge_post": None}  # x hello-world requests/s
P99_TARGET_MS = 100.0
PLEDGE_PRICE = 100  # minor units; each benchmark pledge is 1 x this
PLEDGERS = 16  # members whose tokens the POSTs take in turn


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    output: str
    cpu: dict[str, float] | None = None  # CPU ms per request: app (gunicorn workers), db (its backends), wrk

    @property
    def cpu_ms(self) -> float | None:
        return sum(self.cpu.values()) if self.cpu else None


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of ``wrk --latency``'s report."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (done and rps and p50 and p99):
        raise AssertionError(f"cannot read wrk's report:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)) if errors else {}
    )
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1000,
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
        output=output,
    )


def run_wrk(
    url: str, seconds: int, *, token: str | None = None, script: Path | None = None, args=(), meter=None
) -> WrkResult:
    command = [WRK, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    if token and script is None:
        command += ["-H", f"Authorization: Bearer {token}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if args:
        command += ["--", *args]
    before = meter.read() if meter else None
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = meter.read() if meter else None
    assert result.returncode == 0, f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    parsed = parse_wrk(result.stdout)
    if meter is not None and before is not None and after is not None and parsed.requests:
        wrk_seconds = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
        parsed.cpu = {name: 1000 * CpuMeter.spent(before, after, name) / parsed.requests for name in ("app", "db")}
        parsed.cpu["wrk"] = 1000 * wrk_seconds / parsed.requests
    return parsed


def pooled(results: list[WrkResult]) -> WrkResult:
    """Several runs of one route as one: requests and errors summed, requests/s over their total time,
    the worst p99 and p50, CPU per request over all their requests."""
    requests = sum(r.requests for r in results)
    seconds = sum(r.seconds for r in results)
    errors: dict[str, int] = {}
    for result in results:
        for kind, count in result.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + count
    cpu = None
    if requests and all(r.cpu for r in results):
        cpu = {part: sum(r.cpu[part] * r.requests for r in results) / requests for part in results[0].cpu}
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=errors,
        output="\n".join(r.output for r in results),
        cpu=cpu,
    )


# ---------------------------------------------------------------- CPU per request (Linux /proc)
#
# Requests/s depend on whatever else the machine runs at the time; the CPU time
# one request costs the server's processes does much less. Each wrk run also
# reads the CPU time of the gunicorn workers and of the PostgreSQL backends
# serving the bench database (when PostgreSQL runs on this machine), and wrk's
# own: "cpu ms" is their sum per request, and "cpu x" hello's sum divided by
# the route's, the ratio requests/s would have on a machine doing nothing else.

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU time of each of these processes (those still running)."""
    out = {}
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return out


def child_pids(parent: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _proc_stat(int(stat.parent.name))
        if fields is not None and int(fields[1]) == parent:
            out.append(int(stat.parent.name))
    return out


class CpuMeter:
    """CPU seconds so far of the gunicorn workers ("app") and of the database's backends ("db")."""

    def __init__(self, app, master_pid: int):
        self.app, self.master_pid = app, master_pid

    def backends(self) -> list[int]:
        with self.app.app_context():
            pids = db.session.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            ).scalars()
            pids = list(pids)
            db.session.remove()
        return [pid for pid in pids if _proc_stat(pid) is not None]  # only when PostgreSQL runs here

    def read(self) -> dict[str, dict[int, float]] | None:
        if not Path("/proc/self/stat").exists():
            return None
        return {"app": cpu_seconds(child_pids(self.master_pid)), "db": cpu_seconds(self.backends())}

    @staticmethod
    def spent(before: dict, after: dict, name: str) -> float:
        """Seconds spent between two readings by the processes of the second (new ones: all they spent)."""
        return sum(seconds - before[name].get(pid, 0.0) for pid, seconds in after[name].items())


# ---------------------------------------------------------------- the data


def _world(app) -> dict:
    """A pool worth showing (a supplier's bid, 40 pledges) and an empty pool for the POSTs."""
    from marketplace.pools import services as pools
    from tests.helpers import make_member, token_for

    with app.app_context():
        deadline = datetime.now(UTC) + timedelta(days=3650)  # never due in the other benchmarks' run-due
        organizer = make_member(funds={"EUR": 10_000_000})
        shown = pools.create_pool(
            organizer.id,
            title="Bench pool: heat pumps for the street",
            description="Forty pledges and a supplier's tiered bid, like a busy pool.",
            unit="heat pump",
            currency="EUR",
            min_volume=40,
            deadline=deadline,
        )
        supplier = make_member("supplier")
        pools.place_bid(
            shown.id,
            supplier.id,
            tiers=[
                {"min_volume": 20, "unit_price": 90_000},
                {"min_volume": 50, "unit_price": 85_000},
                {"min_volume": 100, "unit_price": 80_000},
            ],
            capacity=500,
        )
        for n in range(20):
            member = make_member(funds={"EUR": 1_000_000})
            for quantity in (1, 2):
                pools.place_pledge(shown.id, member.id, quantity=quantity, max_unit_price=95_000 - n * 100)
        posted = pools.create_pool(
            organizer.id,
            title="Bench pool: pledges posted by wrk",
            description="",
            unit="crate",
            currency="EUR",
            min_volume=1,
            deadline=deadline,
        )
        pledgers = [make_member(funds={"EUR": 10**9}) for _ in range(PLEDGERS)]
        world = {
            "shown": shown.id,
            "posted": posted.id,
            "token": token_for(organizer),
            "pledgers": [p.id for p in pledgers],
            "pledger_tokens": [token_for(p) for p in pledgers],
        }
        db.session.remove()
    return world


def _pledge_effects(app, world: dict) -> dict:
    from marketplace.ledger.models import Hold, IdempotencyRecord
    from marketplace.ledger.queries import reconcile
    from marketplace.pools.models import Pledge
    from marketplace.pools.queries import total_problems
    from tests.helpers import wallet_of

    with app.app_context():
        db.session.remove()
        pledges = db.session.execute(
            select(func.count(Pledge.id), func.count(func.distinct(Pledge.hold_id))).where(
                Pledge.pool_id == world["posted"], Pledge.member_id.in_(world["pledgers"]), Pledge.status == "active"
            )
        ).one()
        records = db.session.execute(
            select(func.count(IdempotencyRecord.id)).where(IdempotencyRecord.member_id.in_(world["pledgers"]))
        ).scalar_one()
        holds = db.session.execute(
            select(func.count(Hold.id), func.coalesce(func.sum(Hold.amount), 0)).where(
                Hold.reference == f"pool:{world['posted']}:pledge", Hold.status == "held"
            )
        ).one()
        effects = {
            "pledges": pledges[0],
            "distinct_holds": pledges[1],
            "records": records,
            "holds": holds[0],
            "held_amount": int(holds[1]),
            "wallet_held": sum(wallet_of(member_id)["held"] for member_id in world["pledgers"]),
            "ledger_problems": reconcile() + total_problems(),
        }
        db.session.remove()
    return effects


# ---------------------------------------------------------------- profiling (BENCH_HTTP_PROFILE=1)


def _cpu_ms_per_request(call, requests: int, rounds: int = 3) -> float:
    """CPU time of this process per request, the best of a few rounds (no profiler)."""
    best = None
    for _ in range(rounds):
        started = time.process_time()
        for i in range(requests):
            call(i)
        spent = 1000 * (time.process_time() - started) / requests
        best = spent if best is None else min(best, spent)
    return best


def _profile(app, world: dict, requests_per_route: int = 200) -> str:
    """Each route served in this process: CPU ms per request, then under cProfile (CPU time) the top functions."""
    from marketplace import register_bench_routes

    if "bench_hello" not in app.view_functions:
        register_bench_routes(app)  # hello-world in this process too (this app has served no request yet)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {world['token']}"}
    pledge_auth = {"Authorization": f"Bearer {world['pledger_tokens'][0]}"}
    routes = {
        "hello": lambda i: client.get("/bench/hello"),
        "api_get": lambda i: client.get(f"/api/v1/pools/{world['shown']}", headers=auth),
        "pool_page": lambda i: client.get(f"/pools/{world['shown']}"),
        "pledge_post": lambda i: client.post(
            f"/api/v1/pools/{world['posted']}/pledges",
            json={"quantity": 1, "max_unit_price": PLEDGE_PRICE},
            headers={**pledge_auth, "Idempotency-Key": f"profile-{uuid.uuid4().hex}"},
        ),
    }
    out = io.StringIO()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    cpu = {}
    for name, call in routes.items():
        for i in range(10):  # warm up caches, templates, prepared statements
            call(i)
        cpu[name] = _cpu_ms_per_request(call, requests_per_route)
    out.write("\n==== CPU ms per request in this process (Flask's test client, no profiler; best of 3 rounds)\n")
    out.write("".join(f"  {name:12} {ms:6.2f} ms  ({ms / cpu['hello']:4.1f} x hello)\n" for name, ms in cpu.items()))
    for name, call in routes.items():
        if name == "hello":
            continue
        statements.clear()
        call(0)
        out.write(f"\n==== {name}: {len(statements)} SQL statements through SQLAlchemy in one request\n")
        out.write("".join(f"  {' '.join(s.split())[:160]}\n" for s in statements))
        profiler = cProfile.Profile(time.process_time)  # CPU time: waits for the database are not counted
        profiler.enable()
        for i in range(requests_per_route):
            response = call(i)
            assert response.status_code < 300, response.get_data(as_text=True)[:300]
        profiler.disable()
        stats = pstats.Stats(profiler, stream=out)
        out.write(f"\n==== {name}: {requests_per_route} requests in this process (CPU time)\n")
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(12)
    event.remove(engine, "before_cursor_execute", count)
    return out.getvalue()


# ---------------------------------------------------------------- the benchmark


def test_http_throughput(bench_app):
    if WRK is None:
        pytest.skip("wrk is not installed (make bench installs Debian's wrk)")
    world = _world(bench_app)
    database_url = bench_app.config["SQLALCHEMY_DATABASE_URI"]
    run = uuid.uuid4().hex[:12]
    results: dict[str, list[tuple[WrkResult, WrkResult]]] = {}
    # Production's settings except worker recycling: every worker would reach max_requests within the same
    # few seconds of a hello-world run and reboot at once (see the report), which is not throughput.
    args = ["--max-requests", "0"]
    with Gunicorn(database_url, workers=None, env={"MARKETPLACE_BENCH_ROUTES": "1"}, args=args, name="bench") as server:
        workers = server.booted_workers()
        base = server.url
        hello = base + "/bench/hello"
        meter = CpuMeter(bench_app, server.process.pid)
        run_wrk(hello, 3 * WARMUP)  # every worker has booted and warmed up
        routes = {
            "api_get": dict(url=f"{base}/api/v1/pools/{world['shown']}", token=world["token"]),
            "pool_page": dict(url=f"{base}/pools/{world['shown']}"),
            "pledge_post": dict(
                url=f"{base}/api/v1/pools/{world['posted']}/pledges",
                script=PLEDGE_SCRIPT,
                args=(run, *world["pledger_tokens"]),
            ),
        }
        pledges_sent = 0

        def route_run(name: str, spec: dict, seconds: int, tag: str, meter=None) -> WrkResult:
            nonlocal pledges_sent
            options = {k: v for k, v in spec.items() if k != "url"}
            if name == "pledge_post":  # every run's pledges are real: keys of their own, all counted
                options["args"] = (f"{run}{tag}", *world["pledger_tokens"])
            result = run_wrk(spec["url"], seconds, meter=meter, **options)
            if name == "pledge_post":
                assert result.non_2xx == 0, result.output
                pledges_sent += result.requests
            return result

        for name, spec in routes.items():
            route_run(name, spec, WARMUP, "w")  # the route's first requests (prepared statements, memos)
            for round_number in range(ROUNDS):
                first = run_wrk(hello, SECONDS, meter=meter)
                routed = [route_run(name, spec, SECONDS, f"r{round_number}s{n}", meter) for n in (1, 2)]
                last = run_wrk(hello, SECONDS, meter=meter)
                results.setdefault(name, []).append((pooled([first, last]), pooled(routed)))
        log = server.log_text()

    labels = {
        "api_get": "GET /api/v1/pools/{id}",
        "pool_page": "GET /pools/{id} (page)",
        "pledge_post": "POST /api/v1/pools/{id}/pledges",
    }
    lines = [
        "",
        f"HTTP throughput: gunicorn -c gunicorn.conf.py ({workers} sync workers), PostgreSQL, "
        f"wrk -t{THREADS} -c{CONNECTIONS}; {ROUNDS} round(s) per route of hello, route, route, hello "
        f"({SECONDS} s each): ratios pooled over the rounds, p99 the worst run's",
        f"{'route':34} {'req/s':>9} {'hello/s':>9} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms':>7} {'cpu x':>6}  target",
    ]

    def cpu_text(result: WrkResult) -> str:
        return f"{result.cpu_ms:7.2f}" if result.cpu_ms else f"{'-':>7}"

    def ratio_of(pair: tuple[WrkResult, WrkResult]) -> float:
        baseline, measured = pair
        return measured.rps / baseline.rps if baseline.rps else 0.0

    def cpu_ratio_of(pair: tuple[WrkResult, WrkResult]) -> float | None:
        baseline, measured = pair
        return baseline.cpu_ms / measured.cpu_ms if baseline.cpu_ms and measured.cpu_ms else None

    totals = {name: (pooled([b for b, _ in pairs]), pooled([m for _, m in pairs])) for name, pairs in results.items()}
    for name, pairs in results.items():
        baseline, measured = totals[name]
        ratio = ratio_of(totals[name])
        cpu_ratio = cpu_ratio_of(totals[name])
        cpu_ratio = f"{cpu_ratio:6.2f}" if cpu_ratio is not None else f"{'-':>6}"
        worst_p99 = measured.p99_ms
        wanted = TARGETS[name]
        verdict = []
        if wanted is not None:
            verdict.append(f">= {wanted} x hello: {'met' if ratio >= wanted else 'MISSED'}")
        verdict.append(f"p99 < {P99_TARGET_MS:g} ms: {'met' if worst_p99 < P99_TARGET_MS else 'MISSED'}")
        lines.append(
            f"{labels[name]:34} {measured.rps:9.1f} {baseline.rps:9.1f} {ratio:6.2f} "
            f"{measured.p50_ms:8.1f} {worst_p99:8.1f} {cpu_text(measured)} {cpu_ratio}  {'; '.join(verdict)}"
        )
        lines.append(
            f"{'  (its hello-world runs)':34} {baseline.rps:9.1f} {'':9} {'':6} "
            f"{baseline.p50_ms:8.1f} {baseline.p99_ms:8.1f} {cpu_text(baseline)}"
        )
        if len(pairs) > 1:
            lines.append(
                f"{'  (every round: ratio, p99 ms)':34} "
                + ", ".join(f"{ratio_of(pair):.2f} / {pair[1].p99_ms:.1f}" for pair in pairs)
            )
    lines.append(
        "cpu ms: CPU time per request of the gunicorn workers + the database's backends + wrk; "
        "cpu x: hello-world's over the route's (requests/s on an otherwise idle machine)"
    )
    for name, (baseline, measured) in totals.items():
        if measured.cpu and baseline.cpu:
            parts = ", ".join(f"{part} {measured.cpu[part]:.2f}" for part in ("app", "db", "wrk"))
            hello_parts = ", ".join(f"{part} {baseline.cpu[part]:.2f}" for part in ("app", "db", "wrk"))
            lines.append(f"  {labels[name]}: {parts} ms (hello-world: {hello_parts} ms)")
    print("\n".join(lines))

    # Soundness only: every answer 2xx, no socket error, each pledge sent took effect exactly once.
    for name, pairs in results.items():
        for result in (result for pair in pairs for result in pair):
            assert result.requests > 0, f"{name}: no answer at all\n{result.output}"
            assert result.non_2xx == 0, f"{name}: non-2xx answers\n{result.output}"
            assert not any(result.socket_errors.values()), f"{name}: socket errors\n{result.output}"
    assert "Traceback" not in log, log[-4000:]
    effects = _pledge_effects(bench_app, world)
    print(f"pledges: wrk completed {pledges_sent}, the database holds {effects}")
    assert effects["ledger_problems"] == []
    # wrk counts the answers it read; a request in flight when it stopped may still have been served.
    assert pledges_sent <= effects["pledges"] <= pledges_sent + (2 * ROUNDS + 1) * CONNECTIONS, effects
    assert effects["records"] == effects["pledges"] == effects["holds"] == effects["distinct_holds"], effects
    assert effects["held_amount"] == effects["pledges"] * PLEDGE_PRICE == effects["wallet_held"], effects

    if PROFILE:
        print(_profile(bench_app, world))
