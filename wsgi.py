"""WSGI entry point: ``gunicorn wsgi:app``; ``flask`` finds it too."""

from marketplace import create_app

app = create_app()
