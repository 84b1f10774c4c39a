"""Times as answers show them: ISO 8601 UTC with a Z, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float) -> str:
    """Unix time as ISO 8601 UTC with a Z, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
