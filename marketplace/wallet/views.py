from flask import Blueprint

bp = Blueprint("wallet", __name__)
