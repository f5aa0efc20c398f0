"""``flask ledger-check``: exit 0 when every balance equals its postings, 1 with a DIFFERENCE line otherwise."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from marketplace.db import transaction
from marketplace.extensions import db
from marketplace.ledger import services as ledger
from marketplace.ledger.models import Account
from tests.helpers import make_member


def ledger_check(app):
    db.session.remove()  # the command reads through the same session: start it clean
    return app.test_cli_runner().invoke(args=["ledger-check"])


def test_ledger_check_passes_on_a_sound_ledger(app):
    alice, bob = make_member(funds={"EUR": 5_000}), make_member(funds={"EUR": 1_000, "GBP": 300})
    with transaction():
        ledger.transfer("gift", ledger.wallet_account(alice.id, "EUR"), ledger.wallet_account(bob.id, "EUR"), 250)
    result = ledger_check(app)
    assert result.exit_code == 0, result.output
    assert "EUR: debits 6250 credits 6250" in result.output
    assert "GBP: debits 300 credits 300" in result.output
    assert "ledger-check: OK" in result.output
    assert "DIFFERENCE" not in result.output


@pytest.mark.no_ledger_check
def test_ledger_check_fails_on_a_corrupted_balance_and_names_it(app):
    member = make_member(funds={"EUR": 5_000})
    with transaction():
        wallet = ledger.wallet_account(member.id, "EUR")
        wallet_id, code = wallet.id, wallet.code
    corrupt = update(Account).where(Account.id == wallet_id)
    db.session.execute(corrupt.values(balance=Account.balance + 1))  # behind the ledger's back
    db.session.commit()
    try:
        result = ledger_check(app)
        assert result.exit_code == 1, result.output
        assert f"DIFFERENCE: account {code}: cached balance 5001 != sum of postings 5000" in result.output
        assert "ledger-check: 1 difference(s)" in result.output
    finally:
        db.session.execute(corrupt.values(balance=Account.balance - 1))
        db.session.commit()
    result = ledger_check(app)
    assert result.exit_code == 0, result.output
