"""Flask CLI commands: create-operator, seed-demo, ledger-check, run-due, reconcile-stripe."""

from __future__ import annotations

import sys

import click
from flask import Flask


def register(app: Flask) -> None:
    @app.cli.command("create-operator")
    @click.argument("email")
    @click.option("--password", required=True, help="The operator's password (8+ characters).")
    @click.option("--name", default="Operator", help="Display name.")
    def create_operator(email: str, password: str, name: str) -> None:
        """Create (or promote) an operator account."""
        from .accounts.services import create_operator as create

        if len(password) < 8:
            raise click.BadParameter("at least 8 characters", param_hint="--password")
        member = create(email, password, name)
        click.echo(f"Operator {member.email} (id {member.id}) is ready.")

    @app.cli.command("ledger-check")
    def ledger_check() -> None:
        """Recompute balances from postings and pools' pledge totals from pledges; exit 1 on any difference."""
        from .ledger.queries import reconcile, trial_balance
        from .pools.queries import total_problems

        problems = reconcile() + total_problems()
        totals = trial_balance()["totals"]
        for currency, t in sorted(totals.items()):
            click.echo(f"{currency}: debits {t['debits']} credits {t['credits']}")
        if problems:
            for problem in problems:
                click.echo(f"DIFFERENCE: {problem}", err=True)
            click.echo(f"ledger-check: {len(problems)} difference(s)", err=True)
            sys.exit(1)
        click.echo("ledger-check: OK, every balance equals the sum of its postings, every pool's totals its pledges")

    @app.cli.command("run-due")
    def run_due() -> None:
        """Run everything that is due now (cron)."""
        from .operators.jobs import run_due as run

        report = run()
        for name, result in report["jobs"].items():
            click.echo(f"{name}: {result}")

    @app.cli.command("reconcile-stripe")
    def reconcile_stripe() -> None:
        """Compare the ledger with Stripe's PaymentIntents, Refunds and Payouts; exit 1 on any difference."""
        from .payments.reconcile import reconcile_configured

        try:
            report = reconcile_configured()
        except RuntimeError as exc:
            click.echo(f"reconcile-stripe: {exc}", err=True)
            sys.exit(2)
        click.echo(
            f"Checked {report.intents} PaymentIntent(s), {report.refunds} refund(s), {report.payouts} payout(s) at Stripe."
        )
        for currency, totals in sorted(report.currencies.items()):
            click.echo(
                f"{currency}: external:stripe balance {totals['ledger_balance']}, accounted {totals['accounted']}"
            )
        if report.differences:
            for difference in report.differences:
                click.echo(f"DIFFERENCE: {difference.line()}", err=True)
            click.echo(f"reconcile-stripe: {len(report.differences)} difference(s)", err=True)
            sys.exit(1)
        click.echo("reconcile-stripe: OK, the ledger and Stripe agree")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Load demo members, wallets, pools and loans (safe to run again)."""
        from .demo import seed

        for line in seed():
            click.echo(line)
