from flask import Blueprint

bp = Blueprint("conversation", __name__)
