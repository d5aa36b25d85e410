"""The web stack's own limit: Flask under the same gunicorn settings, answering a small JSON body."""
from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index():  # noqa: ANN202
        return jsonify(status="ok", currency="EUR", points={"available": 123, "pending": 0, "reserved": 0})

    return app
