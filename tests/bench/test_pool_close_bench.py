"""Benchmark: close a pool of 100,000 pledges against 50 bids of 5 tiers on PostgreSQL.

Prints the engine time alone and the whole ``close_pool`` (clearing, holds
captured and released, ledger postings, notifications, commit) with peak
memory, and beforehand the time of one read of the open pool (the snapshot
statement of the API and the page) beside summing its pledges. Targets: engine <= 1 s; whole close <= 30 s; peak memory <= 500 MB.
The setup writes a ledger-consistent world with bulk inserts (one funding
entry per member), so the deferred balance triggers check it at commit.
"""

from __future__ import annotations

import os
import random
import resource
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from marketplace.extensions import db

PLEDGES = int(os.environ.get("BENCH_POOL_PLEDGES", "100000"))
MEMBERS = max(1, PLEDGES // 5)
BIDS = 50
TIERS = 5
FUND = 1_000_000
SEED = 20270101


def _bulk(table, rows, returning=None, chunk=5_000):
    ids = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        if returning is not None:
            result = db.session.execute(insert(table).returning(returning, sort_by_parameter_order=True), part)
            ids.extend(result.scalars().all())
        else:
            db.session.execute(insert(table), part)
    return ids


def _build_world(rng: random.Random) -> tuple[int, int]:
    from marketplace.accounts.models import Member
    from marketplace.ledger.models import Account, Hold, JournalEntry, Posting
    from marketplace.pools.models import Bid, BidTier, Pledge, Pool

    t0 = datetime(2027, 1, 1, tzinfo=UTC)
    tag = rng.randrange(10**9)
    member_rows = [
        dict(
            email=f"bench{tag}-{i}@example.test",
            password_hash="x",
            display_name=f"Bench member {i}",
            role="member" if i < MEMBERS else "supplier",
            kyc_status="verified",
            created_at=t0,
        )
        for i in range(MEMBERS + BIDS)
    ]
    member_ids = _bulk(Member.__table__, member_rows, returning=Member.__table__.c.id)
    members, suppliers = member_ids[:MEMBERS], member_ids[MEMBERS:]

    pledge_specs = []
    held_by_member = [0] * MEMBERS
    for i in range(PLEDGES):
        m = i % MEMBERS
        qty = rng.randint(1, 20)
        price = rng.randint(600, 1_000)
        pledge_specs.append((m, qty, price))
        held_by_member[m] += qty * price

    external = db.session.execute(select(Account).where(Account.code == "external:sandbox:EUR")).scalar_one_or_none()
    if external is None:
        external_id = _bulk(
            Account.__table__,
            [
                dict(
                    code="external:sandbox:EUR",
                    currency="EUR",
                    kind="external",
                    normal_side="debit",
                    balance=0,
                    held=0,
                    created_at=t0,
                )
            ],
            returning=Account.__table__.c.id,
        )[0]
        external_balance = 0
    else:
        external_id, external_balance = external.id, external.balance
    wallet_ids = _bulk(
        Account.__table__,
        [
            dict(
                code=f"member:{mid}:wallet:EUR",
                currency="EUR",
                kind="wallet",
                normal_side="credit",
                member_id=mid,
                balance=FUND,
                held=held_by_member[k],
                created_at=t0,
            )
            for k, mid in enumerate(members)
        ],
        returning=Account.__table__.c.id,
    )
    entry_ids = _bulk(
        JournalEntry.__table__,
        [dict(kind="deposit", memo="bench funding", created_at=t0) for _ in members],
        returning=JournalEntry.__table__.c.id,
    )
    postings = []
    for k, entry_id in enumerate(entry_ids):
        external_balance += FUND
        postings.append(
            dict(entry_id=entry_id, account_id=external_id, currency="EUR", amount=FUND, balance_after=external_balance)
        )
        postings.append(
            dict(entry_id=entry_id, account_id=wallet_ids[k], currency="EUR", amount=-FUND, balance_after=FUND)
        )
    _bulk(Posting.__table__, postings)
    db.session.execute(
        Account.__table__.update().where(Account.__table__.c.id == external_id).values(balance=external_balance)
    )

    pool_id = _bulk(
        Pool.__table__,
        [
            dict(
                title="Benchmark pool",
                description="",
                unit="unit",
                currency="EUR",
                min_volume=1_000,
                deadline=t0 + timedelta(days=3650),
                status="open",
                organizer_id=members[0],
                created_at=t0,
            )
        ],
        returning=Pool.__table__.c.id,
    )[0]
    hold_ids = _bulk(
        Hold.__table__,
        [
            dict(account_id=wallet_ids[m], amount=q * p, captured=0, status="held", reference="bench", created_at=t0)
            for m, q, p in pledge_specs
        ],
        returning=Hold.__table__.c.id,
    )
    _bulk(
        Pledge.__table__,
        [
            dict(
                pool_id=pool_id,
                member_id=members[m],
                quantity=q,
                max_unit_price=p,
                held_amount=q * p,
                charged_amount=0,
                status="active",
                hold_id=hold_ids[i],
                created_at=t0 + timedelta(microseconds=i),
            )
            for i, (m, q, p) in enumerate(pledge_specs)
        ],
    )
    bid_ids = _bulk(
        Bid.__table__,
        [
            dict(
                pool_id=pool_id,
                supplier_id=s,
                capacity=rng.randint(600_000, 1_100_000),
                status="active",
                created_at=t0 + timedelta(seconds=j),
            )
            for j, s in enumerate(suppliers)
        ],
        returning=Bid.__table__.c.id,
    )
    tier_rows = []
    for bid_id in bid_ids:
        volume, price = rng.randint(500, 5_000), rng.randint(850, 1_000)
        for _ in range(TIERS):
            tier_rows.append(dict(bid_id=bid_id, min_volume=volume, unit_price=price))
            volume += rng.randint(50_000, 200_000)
            price -= rng.randint(10, 80)
    _bulk(BidTier.__table__, tier_rows)
    db.session.commit()
    return pool_id, members[0]


_APP = None


def _build_in_child(seed: int) -> tuple[int, int]:
    """Runs in a forked process, so the setup's memory never counts against the close."""
    with _APP.app_context():
        db.engine.dispose(close=False)
        return _build_world(random.Random(seed))


def _read_times(pool_id: int, rounds: int = 50):
    """Milliseconds (best of ``rounds``) of the pool's snapshot read, and of summing its pledges as reads did
    before the database kept the totals; the snapshot, checked against that sum."""
    from marketplace.pools.models import COUNTED_PLEDGES, Pledge
    from marketplace.pools.queries import snapshot_from_rows, snapshot_rows

    summed = select(func.sum(Pledge.quantity), func.count(Pledge.id)).where(
        Pledge.pool_id == pool_id, Pledge.status.in_(COUNTED_PLEDGES)
    )
    read = summing = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        rows = snapshot_rows(pool_id)
        read = min(read, time.perf_counter() - t)
        t = time.perf_counter()
        volume, count = db.session.execute(summed).one()
        summing = min(summing, time.perf_counter() - t)
    snapshot = snapshot_from_rows(rows)
    assert (snapshot.pool.volume, snapshot.pool.pledge_count) == (volume, count), (snapshot.pool, volume, count)
    return 1000 * read, 1000 * summing, snapshot


def test_close_pool_of_100k_pledges(bench_app):
    import multiprocessing

    from marketplace.ledger.queries import reconcile
    from marketplace.pools import engine, services
    from marketplace.pools.models import Bid, Pledge
    from marketplace.pools.queries import total_problems

    global _APP
    _APP = bench_app
    with bench_app.app_context():
        db.engine.dispose()
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(1) as workers:
        pool_id, organizer_id = workers.apply(_build_in_child, (SEED,))
    setup = time.perf_counter() - t

    with bench_app.app_context():
        read_ms, summed_ms, snapshot = _read_times(pool_id)
        db.session.remove()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            pool = profiler.runcall(services.close_pool, pool_id, organizer_id)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        else:
            pool = services.close_pool(pool_id, organizer_id)
        close_seconds = time.perf_counter() - t
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        status, award = pool.status, pool.award
        filled = db.session.execute(
            select(func.count(Pledge.id)).where(Pledge.pool_id == pool_id, Pledge.status == "filled")
        ).scalar_one()

        # The engine alone, on the same inputs (every pledge was active at close).
        rows = db.session.execute(
            select(Pledge.id, Pledge.quantity, Pledge.max_unit_price, Pledge.created_at).where(
                Pledge.pool_id == pool_id
            )
        ).all()
        bids = db.session.execute(select(Bid).where(Bid.pool_id == pool_id)).scalars().all()
        engine_pledges = [engine.Pledge(*row) for row in rows]
        engine_bids = [services._engine_bid(b) for b in bids]
        t = time.perf_counter()
        result = engine.clear(1_000, engine_pledges, engine_bids)
        engine_seconds = time.perf_counter() - t
        tracemalloc.start()
        engine.clear(1_000, engine_pledges, engine_bids)
        _, engine_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        problems = reconcile() + total_problems()
        db.session.remove()

    print()
    print(
        f"pool close benchmark: {PLEDGES:,} pledges from {MEMBERS:,} members x {BIDS} bids of {TIERS} tiers (setup {setup:.1f} s, in a child process)"
    )
    print(
        f"  engine only:        {engine_seconds:8.3f} s   (target <= 1 s; its own allocations peak {engine_peak / 2**20:.1f} MB)"
    )
    print(
        f"  whole close_pool:   {close_seconds:8.3f} s   (target <= 30 s; clearing, holds, postings, notifications, commit)"
    )
    print(
        f"  peak memory:        {rss_after / 1024:8.1f} MB (process max RSS during the close; {rss_before / 1024:.1f} MB before; target <= 500 MB)"
    )
    print(
        f"  read of the open pool: {read_ms:8.3f} ms  (the one statement of GET /api/v1/pools/{{id}} and its page, "
        f"totals kept by the database; summing its {snapshot.pool.pledge_count:,} pledges instead: {summed_ms:.3f} ms)"
    )
    print(f"  result: {status}, {filled:,} pledges filled, award {award}")
    assert status == "awarded" and result.awarded and result.winning_bid_id == award["bid_id"]
    assert problems == [], problems
