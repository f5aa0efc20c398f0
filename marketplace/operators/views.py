from flask import Blueprint

bp = Blueprint("operators", __name__)
