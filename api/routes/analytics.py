"""Retention analytics for finance and management."""
from __future__ import annotations

from ..http import Blueprint

blp = Blueprint("analytics", __name__, url_prefix="/v1/analytics", description="Retention analytics (finance, admin)")
