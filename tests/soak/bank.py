"""HTTP bank test: many clients move money through gunicorn while its workers are killed.

``run_soak(app, seconds=...)`` starts ``gunicorn -c gunicorn.conf.py`` with
4 sync workers on a free loopback port, on the database ``app`` is bound to
(PostgreSQL), with the test clock on and generous rate limits. While it
boots, 8 members are signed up through the services (verified by an
operator, each with an API token); then each deposits its first money
through the API and a few pools are opened. For ``seconds``, 16 client
threads (two per member, so they race for the same wallet) do random
deposits, withdrawals (some of everything available, some of more than
anyone has), pledges, pledge withdrawals, lending offers, loan requests and
repayments, with a few reads in between. Every money move carries an
``Idempotency-Key`` and is retried with the same key and body after a
connection error, a timeout or a 5xx. Meanwhile a chaos loop SIGKILLs a
random gunicorn worker every ``kill_every`` seconds (the master starts a new
one).

When the time is up the chaos stops, every operation whose outcome the
client never learned is sent again with its key until it has an answer (the
"drain"), and the server is stopped. Then, from the database:

- ``flask ledger-check`` is clean, and so is ``reconcile()``;
- per currency, the money in the system — every wallet, escrow and fee
  account, plus lenders' claims less borrowers' receivables — equals the
  deposits less the withdrawals the clients saw succeed, exactly; and the
  payment provider's side agrees (external account = settled deposits less
  paid-out parts; pending payouts = withdrawals less paid-out parts);
- every payment, pledge, offer, loan request and repayment in the database
  is one the clients saw succeed, with the amounts they sent, and each key
  they saw succeed has exactly one idempotency record naming that object: no
  key took effect twice, nothing the client saw refused or never sent took
  effect, and everything the client saw succeed is in the ledger (its
  journal entry moves the member's wallet by the amount, or its hold holds it).

Bounded: ``seconds`` of traffic, at most ``max_ops`` operations per client,
a drain of at most ``drain_seconds``. Loopback only.

Run it alone: ``python -m tests.soak.bank --database-url postgresql+psycopg://... --seconds 60``
(the schema of that database is dropped and rebuilt) or ``make soak``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from .server import ROOT, Gunicorn, server_environment

CURRENCIES = ("EUR", "GBP")
PASSWORD = "soak-password-1234"
START_FUNDS = 5_000_000  # minor units per member and currency, deposited through the API before the traffic
OVER_ASK = 10**9  # more than any member ever has: such requests must be refused and change nothing
RETRY_STATUSES = {500, 502, 503, 504}
# How often each operation is picked (relative weights).
WEIGHTS = {
    "deposit": 14,
    "withdrawal": 10,
    "pledge": 18,
    "pledge_withdrawal": 10,
    "offer": 10,
    "loan_request": 10,
    "repayment": 16,
    "read": 12,
}


# ---------------------------------------------------------------- what the clients saw


@dataclass
class Move:
    """One money move the client saw succeed (or sent and never learned the outcome of)."""

    op: str
    member_id: int
    key: str | None
    body: dict
    path: str
    object_id: int | None = None
    response: dict | None = None
    replayed: bool = False
    refusals: tuple[str, ...] = ()  # the 409/422 reasons that are a legitimate "no" to this move


@dataclass
class Seen:
    """Everything one client thread saw; merged after the threads end."""

    moves: list[Move] = field(default_factory=list)
    unresolved: list[Move] = field(default_factory=list)
    withdrawn_pledges: set[int] = field(default_factory=set)
    maybe_withdrawn_pledges: set[int] = field(default_factory=set)  # 409 after a lost answer: checked later
    attempts: int = 0
    answered: int = 0
    ops: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)  # 5xx answers (each was retried with its key)
    replays: int = 0


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timeout"
    text = repr(exc)
    for name in (
        "RemoteDisconnected",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "BrokenPipeError",
        "ConnectionAbortedError",
    ):
        if name in text:
            return f"connection:{name}"
    return f"connection:{type(exc).__name__}"


class Client:
    """One member's HTTP client: JSON, a Bearer token, retries with the same key and body."""

    def __init__(self, base_url: str, seen: Seen, token: str | None = None):
        self.base_url = base_url
        self.seen = seen
        self.token = token
        self.session = requests.Session()
        self.session.trust_env = False  # never through a proxy: loopback only

    def call(self, method: str, path: str, *, body=None, key: str | None = None, until: float):
        """The first answer that is not a 5xx, or None if there was none by ``until``.

        Also returns whether an earlier attempt was lost (a connection error,
        a timeout or a 5xx): then a refusal may mean the first attempt worked.
        """
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if key:
            headers["Idempotency-Key"] = key
        lost, attempt = False, 0
        while True:
            attempt += 1
            self.seen.attempts += 1
            try:
                response = self.session.request(
                    method, self.base_url + path, json=body, headers=headers, timeout=(5, 30), allow_redirects=False
                )
            except requests.RequestException as exc:
                self.seen.errors[_error_kind(exc)] += 1
                response = None
            else:
                self.seen.answered += 1
                if response.status_code not in RETRY_STATUSES:
                    if response.headers.get("Idempotent-Replayed") == "true":
                        self.seen.replays += 1
                    return response, lost
                self.seen.errors[f"http_{response.status_code}"] += 1
                self.seen.server_errors.append(f"{method} {path} -> {response.status_code}: {response.text[:200]}")
            lost = True
            if time.monotonic() >= until:
                return None, lost
            time.sleep(min(1.0, 0.05 * 2 ** min(attempt, 5)) * (0.5 + random.random()))


# ---------------------------------------------------------------- one client thread


class Actor(threading.Thread):
    def __init__(self, run: Soak, index: int, member: dict, seed: int):
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.run_ = run
        self.member_id = member["id"]
        self.seen = Seen()
        self.client = Client(run.url, self.seen, member["token"])
        self.rng = random.Random(seed)
        self.active_pledges: dict[int, int] = {}  # pledge id -> pool id

    # The one place an operation's answer is judged.
    def _judge(self, op: str, response, expected: int, refusals: tuple[str, ...]) -> dict | None:
        self.seen.ops[op] += 1
        body = _json(response)
        if response.status_code == expected:
            return body
        reason = body.get("reason", "") if isinstance(body, dict) else ""
        if response.status_code in (409, 422) and reason in refusals:
            self.seen.refusals[f"{op}:{reason}"] += 1
            return None
        self.seen.unexpected.append(f"{op} -> {response.status_code} {reason}: {response.text[:300]}")
        return None

    def money_move(self, op: str, path: str, body: dict, expected: int, refusals: tuple[str, ...]) -> dict | None:
        key = f"soak-{self.run_.run_id}-{uuid.uuid4().hex}"
        move = Move(op, self.member_id, key, body, path, refusals=refusals)
        response, _ = self.client.call("POST", path, body=body, key=key, until=self.run_.op_deadline)
        if response is None:
            self.seen.ops[op] += 1
            self.seen.unresolved.append(move)
            return None
        result = self._judge(op, response, expected, refusals)
        if result is not None:
            move.response = result
            move.object_id = result.get("id")
            move.replayed = response.headers.get("Idempotent-Replayed") == "true"
            self.seen.moves.append(move)
        return result

    # ------------------------------------------------------------ the operations

    def deposit(self):
        currency = self.rng.choice(CURRENCIES)
        body = {"amount": self.rng.randint(1_000, 400_000), "currency": currency}
        result = self.money_move("deposit", "/api/v1/wallet/deposits", body, 201, ())
        if result is not None and result.get("status") != "succeeded":
            self.seen.unexpected.append(f"deposit answered status {result.get('status')!r}: {result}")

    def withdrawal(self):
        currency = self.rng.choice(CURRENCIES)
        amount = self.rng.randint(1_000, 300_000)
        mode = self.rng.random()
        if mode < 0.08:
            amount = OVER_ASK  # more than anyone has: refused, and nothing may happen
        elif mode < 0.2:  # everything available, racing the member's other thread for the last cent
            response, _ = self.client.call("GET", "/api/v1/wallet", until=self.run_.op_deadline)
            if response is not None and response.status_code == 200:
                rows = [b for b in response.json()["balances"] if b["currency"] == currency]
                amount = rows[0]["available"] if rows and rows[0]["available"] > 0 else amount
        body = {"amount": amount, "currency": currency}
        self.money_move("withdrawal", "/api/v1/wallet/withdrawals", body, 201, ("insufficient_funds",))

    def pledge(self):
        pool = self.rng.choice(self.run_.pools)
        body = {"quantity": self.rng.randint(1, 10), "max_unit_price": self.rng.randint(100, 20_000)}
        if self.rng.random() < 0.08:
            body = {"quantity": 1_000, "max_unit_price": OVER_ASK // 1_000}
        result = self.money_move("pledge", f"/api/v1/pools/{pool['id']}/pledges", body, 201, ("insufficient_funds",))
        if result is not None:
            self.active_pledges[result["id"]] = pool["id"]

    def pledge_withdrawal(self):
        if not self.active_pledges:
            return self.pledge()
        pledge_id = self.rng.choice(sorted(self.active_pledges))
        pool_id = self.active_pledges.pop(pledge_id)
        response, lost = self.client.call(
            "DELETE", f"/api/v1/pools/{pool_id}/pledges/{pledge_id}", until=self.run_.op_deadline
        )
        self.seen.ops["pledge_withdrawal"] += 1
        if response is None:
            self.seen.maybe_withdrawn_pledges.add(pledge_id)
        elif response.status_code == 200:
            self.seen.withdrawn_pledges.add(pledge_id)
        elif lost and response.status_code == 409 and _json(response).get("reason") == "invalid_state":
            self.seen.maybe_withdrawn_pledges.add(pledge_id)  # the lost attempt withdrew it, most likely
        else:
            self.seen.unexpected.append(f"pledge_withdrawal -> {response.status_code}: {response.text[:300]}")

    def offer(self):
        body = {
            "amount": self.rng.randint(20_000, 250_000),
            "currency": self.rng.choice(CURRENCIES),
            "min_rate_bps": self.rng.randint(100, 900),
            "max_part": self.rng.randint(5_000, 60_000),
        }
        if self.rng.random() < 0.08:
            body["amount"] = OVER_ASK
        self.money_move("offer", "/api/v1/lending-offers", body, 201, ("insufficient_funds",))

    def loan_request(self):
        body = {
            "amount": self.rng.randint(10_000, 120_000),
            "currency": self.rng.choice(CURRENCIES),
            "term_months": self.rng.choice((3, 6, 12, 24)),
            "max_rate_bps": self.rng.randint(400, 2_500),
            "purpose": "soak",
        }
        self.money_move("loan_request", "/api/v1/loan-requests", body, 201, ())

    def repayment(self):
        response, _ = self.client.call("GET", "/api/v1/loans", until=self.run_.op_deadline)
        if response is None or response.status_code != 200:
            if response is not None:
                self.seen.unexpected.append(f"GET /loans -> {response.status_code}: {response.text[:300]}")
            return
        loans = [loan for loan in response.json() if loan["status"] == "active" and loan["amount_owed"] > 0]
        if not loans:
            return self.loan_request()
        loan = self.rng.choice(loans)
        body = {"amount": min(loan["amount_owed"], self.rng.randint(100, 25_000))}
        # The member's other thread may have paid the loan meanwhile: then it owes less, or nothing.
        refusals = ("insufficient_funds", "invalid_state", "validation_error")
        self.money_move("repayment", f"/api/v1/loans/{loan['id']}/repayments", body, 201, refusals)

    def read(self):
        if self.rng.random() < 0.5:
            path = "/api/v1/wallet"
        else:
            path = f"/api/v1/pools/{self.rng.choice(self.run_.pools)['id']}"
        response, _ = self.client.call("GET", path, until=self.run_.op_deadline)
        self.seen.ops["read"] += 1
        if response is not None and response.status_code != 200:
            self.seen.unexpected.append(f"GET {path} -> {response.status_code}: {response.text[:300]}")

    def run(self):
        names = list(WEIGHTS)
        weights = [WEIGHTS[n] for n in names]
        done = 0
        try:
            while time.monotonic() < self.run_.end and done < self.run_.max_ops:
                getattr(self, self.rng.choices(names, weights)[0])()
                done += 1
        except Exception as exc:  # noqa: BLE001 - reported as a problem, never silently lost
            self.seen.unexpected.append(f"client crashed: {exc!r}")


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"_list": body}


# ---------------------------------------------------------------- the run


@dataclass
class Report:
    seconds: float
    problems: list[str]  # the ledger, the money or the idempotency keys disagree with the clients: fails the run
    warnings: list[str]  # 5xx answers and errors in the server's log: fail the run only when strict
    lines: list[str]

    def __str__(self) -> str:
        verdict = [f"PROBLEM: {p}" for p in self.problems] or ["ledger, money and keys: no problems found"]
        return "\n".join(self.lines + [f"WARNING: {w}" for w in self.warnings] + verdict)


class Soak:
    def __init__(
        self,
        app,
        *,
        seconds: float,
        clients: int = 16,
        per_member: int = 2,
        workers: int = 4,
        kill_every: float = 5.0,
        max_ops: int = 100_000,
        drain_seconds: float = 60.0,
        seed: int | None = None,
        strict: bool = False,
    ):
        self.app = app
        self.strict = strict
        self.seconds = seconds
        self.clients = clients
        self.member_count = max(1, clients // per_member)  # each member's threads race for its money
        self.workers = workers
        self.kill_every = kill_every
        self.max_ops = max_ops
        self.drain_seconds = drain_seconds
        self.seed = random.randrange(2**32) if seed is None else seed
        self.run_id = uuid.uuid4().hex[:8]
        self.database_url = app.config["SQLALCHEMY_DATABASE_URI"]
        cfg = app.config
        self.server = Gunicorn(
            self.database_url,
            workers=workers,
            name="soak",
            env={
                "MARKETPLACE_TEST_CLOCK": "1",
                "MARKETPLACE_CURRENCIES": ",".join(cfg["CURRENCIES"]),
                "POOL_FEE_BPS": str(cfg["POOL_FEE_BPS"]),
                "ORIGINATION_FEE_BPS": str(cfg["ORIGINATION_FEE_BPS"]),
                "LOAN_FUNDING_DAYS": str(cfg["LOAN_FUNDING_DAYS"]),
                "DEFAULT_AFTER_DAYS": str(cfg["DEFAULT_AFTER_DAYS"]),
                "GUNICORN_ACCESS_LOG": "-",
            },
            args=["--timeout", "60", "--graceful-timeout", "10", "--max-requests", "0"],
        )
        self.url = self.server.url
        self.members: list[dict] = []
        self.pools: list[dict] = []
        self.setup_seen = Seen()
        self.kills: list[int] = []
        self.end = self.op_deadline = 0.0

    # ------------------------------------------------------------ set-up through the API

    def sign_up(self) -> None:
        """Members, API tokens and KYC through the services (while gunicorn boots)."""
        from marketplace.accounts import services as accounts

        with self.app.app_context():
            operator = accounts.create_operator(f"soak-operator-{self.run_id}@example.test", PASSWORD, "Soak operator")
            for n in range(self.member_count):
                member = accounts.create_member(f"soak-{self.run_id}-{n}@example.test", PASSWORD, f"Soak client {n}")
                accounts.set_kyc_status(operator.id, member.id, "verified")
                token, _ = accounts.issue_token(member.id, "soak")
                self.members.append({"id": member.id, "token": token})

    def set_up(self) -> None:
        """Each member's first deposits (one thread per member), then a few pools, through the API."""
        until = time.monotonic() + 120
        self.op_deadline = until
        seens = [Seen() for _ in self.members]
        failures: list[str] = []

        def fund(n: int) -> None:
            actor = Actor(self, n, self.members[n], 0)
            actor.seen = actor.client.seen = seens[n]
            for currency in CURRENCIES:
                body = {"amount": START_FUNDS, "currency": currency}
                if actor.money_move("deposit", "/api/v1/wallet/deposits", body, 201, ()) is None:
                    failures.append(f"client {n}: {seens[n].unexpected or seens[n].unresolved}")

        threads = [threading.Thread(target=fund, args=(n,), daemon=True) for n in range(len(self.members))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, until - time.monotonic()))
        if failures or any(thread.is_alive() for thread in threads):
            raise RuntimeError("soak set-up deposits failed: " + "; ".join(failures or ["a client did not finish"]))
        self.setup_seen = _merge(seens)
        deadline = (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for n, currency in enumerate(CURRENCIES * 2):
            organizer = Client(self.url, self.setup_seen, self.members[n % self.member_count]["token"])
            body = {"title": f"Soak pool {n}", "unit": "crate", "currency": currency, "min_volume": 50}
            body["deadline"] = deadline
            self.pools.append(_expect(organizer.call("POST", "/api/v1/pools", body=body, until=until), 201))

    # ------------------------------------------------------------ chaos

    def chaos(self, stop: threading.Event, rng: random.Random) -> None:
        while not stop.wait(self.kill_every):
            pids = self.server.worker_pids()
            if not pids:
                continue
            victim = rng.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
                self.kills.append(victim)
            except ProcessLookupError:
                pass

    # ------------------------------------------------------------ the whole run

    def run(self) -> Report:
        t0 = time.monotonic()
        self.server.launch()
        try:
            self.sign_up()
            self.server.wait_ready()
            boot_seconds = time.monotonic() - t0
            self.set_up()
            setup_seconds = time.monotonic() - t0 - boot_seconds
            actors = [Actor(self, n, self.members[n % self.member_count], self.seed + n) for n in range(self.clients)]
            stop = threading.Event()
            chaos = threading.Thread(target=self.chaos, args=(stop, random.Random(self.seed)), daemon=True)
            start = time.monotonic()
            self.end = start + self.seconds
            self.op_deadline = self.end + 15
            chaos.start()
            for actor in actors:
                actor.start()
            for actor in actors:
                actor.join(timeout=max(1.0, self.op_deadline + 90 - time.monotonic()))
            traffic_seconds = time.monotonic() - start
            stop.set()
            chaos.join(timeout=10)
            hung = [a.name for a in actors if a.is_alive()]
            seen = _merge([a.seen for a in actors])
            drain_start = time.monotonic()
            drained = self.drain(seen)
            drain_seconds = time.monotonic() - drain_start
        finally:
            self.server.stop()
        problems = [f"client thread did not finish: {name}" for name in hung]
        problems += [f"unexpected answer: {u}" for u in seen.unexpected[:50]]
        if len(seen.unexpected) > 50:
            problems.append(f"... and {len(seen.unexpected) - 50} more unexpected answers")
        problems += [f"never answered, even after the drain: {m.op} {m.path} key {m.key}" for m in seen.unresolved]
        check_start = time.monotonic()
        all_moves = self.setup_seen.moves + seen.moves
        figures, ledger_problems = verify(self.app, self.database_url, self.members, all_moves, seen)
        problems += ledger_problems
        sweep_figures, sweep_problems = sweep_and_recheck(self.app, all_moves)
        figures += sweep_figures
        problems += sweep_problems
        warnings = [f"server error (retried with its key): {e}" for e in seen.server_errors[:20]]
        warnings += _server_log_problems(self.server.log_text())
        if self.strict:
            problems, warnings = problems + warnings, []
        lines = [
            f"soak: {self.clients} client threads for {self.member_count} members, {self.workers} gunicorn workers, "
            f"seed {self.seed}, "
            f"{len(self.kills)} workers SIGKILLed (one every {self.kill_every:g} s)",
            f"durations: boot and sign-up {boot_seconds:.1f} s, funding {setup_seconds:.1f} s, traffic {traffic_seconds:.1f} s, "
            f"drain {drain_seconds:.1f} s ({drained} operations resent), checks {time.monotonic() - check_start:.1f} s",
            f"HTTP requests: {seen.attempts} sent, {seen.answered} answered, "
            f"{seen.answered / traffic_seconds:.1f} answered/s; {seen.replays} answers were idempotent replays",
            "operations: " + ", ".join(f"{op} {n}" for op, n in sorted(seen.ops.items())),
            "succeeded money moves: "
            + ", ".join(f"{op} {n}" for op, n in sorted(Counter(m.op for m in seen.moves).items())),
            "refused (expected): " + (", ".join(f"{k} {n}" for k, n in sorted(seen.refusals.items())) or "none"),
            "errors by kind: " + (", ".join(f"{k} {n}" for k, n in sorted(seen.errors.items())) or "none"),
            f"pledge withdrawals whose answer was lost (checked in the database): {len(seen.maybe_withdrawn_pledges)}",
        ]
        lines += figures
        lines.append(f"server log: {self.server.log_path}")
        return Report(time.monotonic() - t0, problems, warnings, lines)

    def drain(self, seen: Seen) -> int:
        """Resend every money move whose outcome the client never learned, with its key, until answered."""
        pending, seen.unresolved = seen.unresolved, []
        if not pending:
            return 0
        until = time.monotonic() + self.drain_seconds
        tokens = {m["id"]: m["token"] for m in self.members}
        for move in pending:
            client = Client(self.url, seen, tokens[move.member_id])
            response, _ = client.call("POST", move.path, body=move.body, key=move.key, until=until)
            if response is None:
                seen.unresolved.append(move)
                continue
            if response.status_code in (200, 201):
                move.response = _json(response)
                move.object_id = move.response.get("id")
                move.replayed = response.headers.get("Idempotent-Replayed") == "true"
                seen.moves.append(move)
            elif response.status_code in (409, 422) and _json(response).get("reason") in move.refusals:
                seen.refusals[f"{move.op}:{_json(response).get('reason')}"] += 1
            else:
                seen.unexpected.append(f"drain {move.op} -> {response.status_code}: {response.text[:300]}")
        return len(pending)


def _expect(answer, status: int) -> dict:
    response, _ = answer
    if response is None or response.status_code != status:
        detail = "no answer" if response is None else f"{response.status_code}: {response.text[:300]}"
        raise RuntimeError(f"soak set-up: expected {status}, got {detail}")
    return response.json()


def _merge(seens: list[Seen]) -> Seen:
    out = Seen()
    for s in seens:
        out.moves += s.moves
        out.unresolved += s.unresolved
        out.withdrawn_pledges |= s.withdrawn_pledges
        out.maybe_withdrawn_pledges |= s.maybe_withdrawn_pledges
        out.attempts += s.attempts
        out.answered += s.answered
        out.ops += s.ops
        out.refusals += s.refusals
        out.errors += s.errors
        out.unexpected += s.unexpected
        out.server_errors += s.server_errors
        out.replays += s.replays
    return out


def _server_log_problems(log: str) -> list[str]:
    """Errors in the server's log, less the master's note of each worker we killed."""
    problems = []
    for line in log.splitlines():
        if line.startswith("{") and ('"level": "ERROR"' in line or '"level": "CRITICAL"' in line):
            try:
                record = json.loads(line)
            except ValueError:
                problems.append(f"server log: {line[:300]}")
                continue
            cause = (record.get("exception") or "").strip().splitlines()[-4:]
            problems.append(f"server log: {record.get('message')}: {' | '.join(cause)}"[:700])
        elif "[ERROR]" in line or "[CRITICAL]" in line or line.startswith("Traceback"):
            if "was sent SIGKILL" in line or "was sent code 9" in line:
                continue
            problems.append(f"server log: {line[:300]}")
    return problems[:20]


# ---------------------------------------------------------------- the checks


def ledger_check_cli(database_url: str) -> tuple[int, str]:
    """``flask ledger-check`` against the soak's database, as an operator would run it."""
    flask = Path(sys.executable).parent / "flask"
    env = server_environment(database_url, {"FLASK_APP": "wsgi.py"})
    result = subprocess.run(
        [str(flask), "ledger-check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def verify(app, database_url: str, members: list[dict], moves: list[Move], seen: Seen) -> tuple[list[str], list[str]]:
    """Compare the database with what the clients saw. Returns (figures, problems)."""
    from sqlalchemy import func, select

    from marketplace.extensions import db
    from marketplace.ledger.models import Account, Hold, IdempotencyRecord, JournalEntry, Posting
    from marketplace.ledger.queries import reconcile, trial_balance
    from marketplace.lending.models import LendingOffer, Loan, LoanPart, LoanRequest, Repayment
    from marketplace.payments.models import Payment
    from marketplace.pools.models import Pledge

    figures: list[str] = []
    problems: list[str] = []
    member_ids = {m["id"] for m in members}

    code, output = ledger_check_cli(database_url)
    figures.append(f"flask ledger-check: exit {code}: {output.splitlines()[-1] if output else ''}")
    if code != 0:
        problems.append(f"flask ledger-check failed (exit {code}):\n{output[-3000:]}")

    with app.app_context():
        db.session.remove()
        problems += [f"reconcile: {p}" for p in reconcile()]
        if not trial_balance()["balanced"]:
            problems.append("the trial balance does not balance")

        money_figures, money_problems = money_check(moves)
        figures += money_figures
        problems += money_problems

        # ---- every object in the database is one a client saw succeed, once, as sent
        wallets = {
            (a.member_id, a.currency): a.id
            for a in db.session.execute(select(Account).where(Account.kind == "wallet")).scalars()
        }

        def wallet_posting(entry_id, member_id, currency) -> int | None:
            if entry_id is None:
                return None
            return db.session.execute(
                select(func.sum(Posting.amount)).where(
                    Posting.entry_id == entry_id, Posting.account_id == wallets.get((member_id, currency))
                )
            ).scalar()

        by_op: dict[str, dict[int, Move]] = defaultdict(dict)
        for m in moves:
            if m.object_id is None:
                problems.append(f"{m.op} key {m.key}: the answer had no id: {m.response}")
                continue
            if m.object_id in by_op[m.op]:
                problems.append(f"{m.op} {m.object_id} answered for two keys: {by_op[m.op][m.object_id].key}, {m.key}")
            by_op[m.op][m.object_id] = m

        def same_set(op: str, rows: dict[int, object]) -> None:
            seen_ids, db_ids = set(by_op[op]), set(rows)
            extra, missing = db_ids - seen_ids, seen_ids - db_ids
            if extra:
                problems.append(f"{op}: {len(extra)} in the database that no client saw succeed: {sorted(extra)[:20]}")
            if missing:
                problems.append(
                    f"{op}: {len(missing)} the clients saw succeed are not in the database: {sorted(missing)[:20]}"
                )

        payments = {
            p.id: p for p in db.session.execute(select(Payment).where(Payment.member_id.in_(member_ids))).scalars()
        }
        for direction in ("deposit", "withdrawal"):
            rows = {i: p for i, p in payments.items() if p.direction == direction}
            same_set(direction, rows)
            kind_entries = db.session.execute(
                select(func.count(JournalEntry.id)).where(
                    JournalEntry.kind == direction, JournalEntry.actor_id.in_(member_ids)
                )
            ).scalar_one()
            if kind_entries != len(by_op[direction]):
                problems.append(f"{direction}: {kind_entries} journal entries for {len(by_op[direction])} seen")
            for pid, m in by_op[direction].items():
                p = rows.get(pid)
                if p is None:
                    continue
                if (p.member_id, p.amount, p.currency) != (m.member_id, m.body["amount"], m.body["currency"]):
                    problems.append(f"{direction} {pid}: {p.member_id}/{p.amount}/{p.currency} != sent {m.body}")
                want = -p.amount if direction == "deposit" else p.amount
                if wallet_posting(p.entry_id, p.member_id, p.currency) != want:
                    problems.append(
                        f"{direction} {pid}: its journal entry {p.entry_id} does not move the wallet by {want}"
                    )
                if direction == "deposit" and p.status != "succeeded":
                    problems.append(f"deposit {pid} is {p.status}")

        pledges = {
            p.id: p for p in db.session.execute(select(Pledge).where(Pledge.member_id.in_(member_ids))).scalars()
        }
        same_set("pledge", pledges)
        holds = {h.id: h for h in db.session.execute(select(Hold)).scalars()}
        for pid, m in by_op["pledge"].items():
            p = pledges.get(pid)
            if p is None:
                continue
            hold = holds.get(p.hold_id)
            if (p.member_id, p.quantity, p.max_unit_price) != (
                m.member_id,
                m.body["quantity"],
                m.body["max_unit_price"],
            ):
                problems.append(f"pledge {pid}: {p.quantity} x {p.max_unit_price} != sent {m.body}")
            if hold is None or hold.amount != p.quantity * p.max_unit_price:
                problems.append(f"pledge {pid}: no hold of {p.quantity * p.max_unit_price}")
                continue
            if pid in seen.withdrawn_pledges or pid in seen.maybe_withdrawn_pledges:
                wanted = {"withdrawn"} if pid in seen.withdrawn_pledges else {"withdrawn", "active"}
            else:
                wanted = {"active"}
            if p.status not in wanted:
                problems.append(f"pledge {pid} is {p.status}, the client expects {sorted(wanted)}")
            if (p.status == "active") != (hold.status == "held"):
                problems.append(f"pledge {pid} is {p.status} but its hold is {hold.status}")
        figures.append(
            f"pledges: {len(pledges)} placed, {sum(p.status == 'withdrawn' for p in pledges.values())} withdrawn"
        )

        offers = {
            o.id: o
            for o in db.session.execute(select(LendingOffer).where(LendingOffer.lender_id.in_(member_ids))).scalars()
        }
        same_set("offer", offers)
        for oid, m in by_op["offer"].items():
            o = offers.get(oid)
            if o is not None and (o.amount, o.currency, o.max_part) != (
                m.body["amount"],
                m.body["currency"],
                m.body["max_part"],
            ):
                problems.append(f"offer {oid}: {o.amount} {o.currency} != sent {m.body}")
        for o in offers.values():  # what an offer has not lent yet is held in the lender's wallet
            hold = holds.get(o.hold_id)
            held = hold.amount if hold is not None and hold.status == "held" else 0
            if held != (o.remaining if o.status == "open" else 0):
                problems.append(f"offer {o.id} ({o.status}): remaining {o.remaining} but {held} held")
        requests_ = {
            r.id: r
            for r in db.session.execute(select(LoanRequest).where(LoanRequest.borrower_id.in_(member_ids))).scalars()
        }
        same_set("loan_request", requests_)
        loans = {loan.id: loan for loan in db.session.execute(select(Loan)).scalars()}
        funded = [r for r in requests_.values() if r.status == "funded"]
        for r in funded:
            if r.loan_id not in loans:
                problems.append(f"loan request {r.id} is funded but loan {r.loan_id} does not exist")
        account_balance = dict(db.session.execute(select(Account.code, Account.balance)).all())
        parts_by_loan: dict[int, list] = defaultdict(list)
        for part in db.session.execute(select(LoanPart)).scalars():
            parts_by_loan[part.loan_id].append(part)
        for loan in loans.values():
            receivable = account_balance.get(loan.receivable_code, 0)
            claims = sum(account_balance.get(p.claim_code(), 0) for p in parts_by_loan[loan.id])
            if receivable != claims or receivable != loan.outstanding_principal:
                problems.append(
                    f"loan {loan.id}: receivable {receivable}, claims {claims}, outstanding {loan.outstanding_principal}"
                )
        figures.append(f"lending: {len(offers)} offers, {len(requests_)} requests, {len(funded)} funded into loans")

        repayments = {
            r.id: r
            for r in db.session.execute(
                select(Repayment).join(Loan, Loan.id == Repayment.loan_id).where(Loan.borrower_id.in_(member_ids))
            ).scalars()
        }
        same_set("repayment", repayments)
        for rid, m in by_op["repayment"].items():
            r = repayments.get(rid)
            if r is None:
                continue
            loan = loans[r.loan_id]
            if r.amount != m.body["amount"] or r.kind != "manual" or r.principal + r.interest != r.amount:
                problems.append(f"repayment {rid}: {r.kind} {r.amount} ({r.principal}+{r.interest}) != sent {m.body}")
            if wallet_posting(r.entry_id, loan.borrower_id, loan.currency) != r.amount:
                problems.append(
                    f"repayment {rid}: its journal entry {r.entry_id} does not take {r.amount} from the wallet"
                )
        figures.append(f"repayments: {len(repayments)}")

        # ---- one idempotency record per key that took effect, naming the object the client saw
        records = {
            (r.member_id, r.key): r
            for r in db.session.execute(
                select(IdempotencyRecord).where(IdempotencyRecord.member_id.in_(member_ids))
            ).scalars()
        }
        keyed = [m for m in moves if m.key]
        if len(records) != len(keyed):
            problems.append(f"{len(records)} idempotency records for {len(keyed)} keys that took effect")
        for m in keyed:
            record = records.get((m.member_id, m.key))
            if record is None:
                problems.append(f"{m.op} key {m.key}: no idempotency record")
                continue
            stored = json.loads(record.response_body or "{}")
            if record.status_code not in (200, 201) or stored.get("id") != m.object_id:
                problems.append(
                    f"{m.op} key {m.key}: record says {record.status_code} {stored.get('id')}, client saw {m.object_id}"
                )
        figures.append(f"idempotency records: {len(records)} for {len(keyed)} keys that took effect")
        db.session.remove()
    return figures, problems


def money_check(moves: list[Move]) -> tuple[list[str], list[str]]:
    """Per currency: money in the system = deposits - withdrawals the clients saw; the provider's side agrees.

    In the system: every wallet, escrow and fee account, plus lenders' claims
    less borrowers' receivables (credit-normal balances less debit-normal
    ones), leaving out the external (provider) and pending-payouts accounts.
    Runs in the caller's app context.
    """
    from sqlalchemy import func, select

    from marketplace.extensions import db
    from marketplace.ledger.models import Account
    from marketplace.payments.models import PayoutPart

    figures: list[str] = []
    problems: list[str] = []
    sign = {"credit": 1, "debit": -1}
    balances = db.session.execute(
        select(Account.currency, Account.kind, Account.normal_side, func.sum(Account.balance)).group_by(
            Account.currency, Account.kind, Account.normal_side
        )
    ).all()
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    inside: dict[str, int] = defaultdict(int)
    for currency, kind, side, total in balances:
        by_kind[currency][kind] += int(total)
        if kind not in ("external", "pending_payouts"):
            inside[currency] += sign[side] * int(total)
    client_in: dict[str, int] = defaultdict(int)
    client_out: dict[str, int] = defaultdict(int)
    for m in moves:
        if m.op == "deposit":
            client_in[m.body["currency"]] += m.body["amount"]
        elif m.op == "withdrawal":
            client_out[m.body["currency"]] += m.body["amount"]
    paid_parts = dict(
        db.session.execute(
            select(PayoutPart.currency, func.sum(PayoutPart.amount))
            .where(PayoutPart.status == "paid")
            .group_by(PayoutPart.currency)
        ).all()
    )
    open_parts = dict(
        db.session.execute(
            select(PayoutPart.currency, func.sum(PayoutPart.amount))
            .where(PayoutPart.status.in_(("pending", "sent", "queued")))
            .group_by(PayoutPart.currency)
        ).all()
    )
    parts_by_status = Counter(
        dict(db.session.execute(select(PayoutPart.status, func.count()).group_by(PayoutPart.status)).all())
    )
    for currency in sorted(set(client_in) | set(inside)):
        expected = client_in[currency] - client_out[currency]
        paid = int(paid_parts.get(currency) or 0)
        figures.append(
            f"{currency}: deposits {client_in[currency]} - withdrawals {client_out[currency]} = {expected}; "
            f"in the system {inside[currency]} (wallets {by_kind[currency]['wallet']}, "
            f"escrow {by_kind[currency]['escrow']}, fees {by_kind[currency]['fees']}, "
            f"claims {by_kind[currency]['loan_part']} - receivables {by_kind[currency]['loan']}); "
            f"external {by_kind[currency]['external']}, pending payouts {by_kind[currency]['pending_payouts']}, "
            f"paid out {paid}"
        )
        if inside[currency] != expected:
            problems.append(
                f"{currency}: money in the system {inside[currency]} != deposits - withdrawals {expected} "
                f"(off by {inside[currency] - expected})"
            )
        if by_kind[currency]["external"] != client_in[currency] - paid:
            problems.append(
                f"{currency}: external account {by_kind[currency]['external']} != settled deposits "
                f"{client_in[currency]} - paid-out parts {paid}"
            )
        if by_kind[currency]["pending_payouts"] != int(open_parts.get(currency) or 0):
            problems.append(
                f"{currency}: pending payouts {by_kind[currency]['pending_payouts']} != unpaid payout parts "
                f"{int(open_parts.get(currency) or 0)}"
            )
        if by_kind[currency]["loan"] != by_kind[currency]["loan_part"]:
            problems.append(
                f"{currency}: loan receivables {by_kind[currency]['loan']} != lenders' claims "
                f"{by_kind[currency]['loan_part']}"
            )
    figures.append("payout parts by status: " + ", ".join(f"{k} {n}" for k, n in sorted(parts_by_status.items())))
    return figures, problems


def sweep_and_recheck(app, moves: list[Move]) -> tuple[list[str], list[str]]:
    """Run-due (11 minutes on, past the unsent-refund grace): what killed workers left due is finished.

    Afterwards no refund may be left unsent, the ledger reconciles and the
    money still adds up.
    """
    from sqlalchemy import func, select

    from marketplace.clock import now
    from marketplace.extensions import db
    from marketplace.ledger.queries import reconcile
    from marketplace.operators.jobs import run_due
    from marketplace.payments.models import PayoutPart

    with app.app_context():
        db.session.remove()
        report = run_due(now() + timedelta(minutes=11))
        db.session.remove()
        swept = report["jobs"].get("payouts", report)
        figures = [f"run-due afterwards (what killed workers left due): {swept}"]
        problems = [f"after run-due, reconcile: {p}" for p in reconcile()]
        unsent = db.session.execute(
            select(func.count(PayoutPart.id)).where(
                PayoutPart.method == "refund", PayoutPart.status.in_(("pending", "sent"))
            )
        ).scalar_one()
        if unsent:
            problems.append(f"after run-due, {unsent} refunds are still unsent or unconfirmed")
        money_figures, money_problems = money_check(moves)
        if any(swept.values()):
            figures += ["after run-due: " + f for f in money_figures]
        problems += [f"after run-due: {p}" for p in money_problems]
        db.session.remove()
    return figures, problems


# ---------------------------------------------------------------- alone


def run_soak(app, **options) -> Report:
    return Soak(app, **options).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL; its schema is dropped and rebuilt")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--strict", action="store_true", help="5xx answers and server errors fail the run too")
    args = parser.parse_args(argv)
    app = soak_app(args.database_url, reset=True)
    report = run_soak(
        app,
        seconds=args.seconds,
        clients=args.clients,
        workers=args.workers,
        kill_every=args.kill_every,
        seed=args.seed,
        strict=args.strict,
    )
    print(report)
    return 1 if report.problems else 0


def soak_app(database_url: str, *, reset: bool):
    """An app on ``database_url`` (PostgreSQL), its schema rebuilt by the migrations if ``reset``."""
    from sqlalchemy import text

    from marketplace import create_app
    from marketplace.extensions import db

    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            database_url = "postgresql+psycopg://" + database_url[len(prefix) :]
    if not database_url.startswith("postgresql"):
        raise SystemExit("the soak needs PostgreSQL")
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "soak", "TEST_CLOCK": True})
    if reset:
        from flask_migrate import upgrade

        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            upgrade()
            db.engine.dispose()
    return app


if __name__ == "__main__":
    sys.exit(main())
