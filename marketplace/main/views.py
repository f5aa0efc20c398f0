"""The home page: what the marketplace is, and a signed-in member's wallet at a glance."""

from flask import Blueprint, render_template
from flask_login import current_user

from ..wallet import services as wallet

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    balances = wallet.balances(current_user.id) if current_user.is_authenticated else []
    return render_template("main/index.html", balances=balances)
