"""Marshmallow schemas: request validation, response shapes, and the OpenAPI document."""
