"""Times as answers show them (ISO 8601 UTC with a Z, to the second), and ages as people write them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from mailgent_mcp.errors import InvalidInput


def iso(ts: float) -> str:
    """Unix time as ISO 8601 UTC with a Z, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_age(text: str) -> float:
    """'7d', '12h', '30m', '45s' or plain seconds, as seconds: finite and not negative."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value = text.strip().lower()
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:  # also refuses nan
        raise InvalidInput(f"{text[:20]!r} is not an age; use e.g. 7d, 12h, 30m or 45s.")
    return seconds
