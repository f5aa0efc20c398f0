from flask import Blueprint

bp = Blueprint("pools", __name__)
