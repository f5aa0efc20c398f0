"""localstripe for the Stripe tests: a server per test module, and helpers that speak Stripe.

localstripe (a stateful Stripe-compatible server, from requirements-dev.txt)
runs in a subprocess on a free 127.0.0.1 port. Its own CLI listens on every
interface and pickles its state to /tmp, so the launcher runs its aiohttp
app bound to loopback with the disk store switched off. ``stripe_app`` is
the session ``app`` switched to ``PAYMENTS_PROVIDER="stripe"`` for one test;
the app's provider then talks to localstripe through the real ``stripe``
library.

A test module gets the fixtures with::

    pytest_plugins = ("tests.stripe_fixtures",)

What localstripe does not do, and how the tests deal with it:

- It sends no webhook for a refund, a payout or an uncaptured authorization,
  and only some for PaymentIntents: the tests deliver Stripe's event the way
  Stripe would, signed with the endpoint secret (``signed_event``).
- It ignores ``Idempotency-Key``: where a test needs Stripe's idempotency
  (a retry after a lost answer) it routes the client through
  ``IdempotentTransport``, which replays a key's first answer as Stripe does.
- A partial capture leaves the charge at its full amount and adds a refund
  of the rest (Stripe reports ``amount_received`` instead).
- Its lists are oldest first (Stripe's are newest first) and take no
  ``created`` filter.

Test cards (localstripe's resources.py): ``pm_card_visa`` succeeds,
``pm_card_chargeCustomerFail`` (4000000000000341) is declined when charged,
4000002500003155 requires 3-D Secure, completed through localstripe's
``_authenticate`` endpoint (what Stripe.js does in a browser).
"""

from __future__ import annotations

import pytest

from .stripe_helpers import flush_localstripe, running_localstripe, stripe_config, stripe_settings


@pytest.fixture(scope="module")
def localstripe_url():
    with running_localstripe() as url:
        yield url


@pytest.fixture
def stripe_app(app, localstripe_url):
    """The session app paying through localstripe (emptied first) for this test only."""
    flush_localstripe(localstripe_url)
    with stripe_settings(app, **stripe_config(localstripe_url)):
        yield app
