"""How hard a passphrase is to guess, by zxcvbn (a maintained estimator), before the vault is sealed with it.

Argon2id makes each guess slow, not a guessable passphrase safe: one a person would pick
first ("password1", a name and a year) falls to a short dictionary run whatever the cost.
"""

from __future__ import annotations

from mailgent_mcp.errors import InvalidInput

MIN_SCORE = 3  # zxcvbn's scale of 0-4; 3: "safely unguessable" against an offline attack on a slow hash
SCORED_CHARS = 72  # zxcvbn scores at most this many characters; a longer passphrase is judged by its start


def check_passphrase(passphrase: str) -> None:
    """Raise InvalidInput unless passphrase is non-empty and strong enough; the text never quotes it."""
    if not passphrase or not passphrase.strip():
        raise InvalidInput("The passphrase is empty; choose four or more random words.")
    from zxcvbn import (
        zxcvbn,  # its word lists take a while to load: only when a passphrase is chosen
    )

    result = zxcvbn(passphrase[:SCORED_CHARS])
    if int(result["score"]) >= MIN_SCORE:
        return
    feedback = result.get("feedback") or {}
    hints = " ".join(str(x) for x in [feedback.get("warning"), *(feedback.get("suggestions") or [])] if x)
    raise InvalidInput(
        "That passphrase is too easy to guess" + (f" ({hints.rstrip('.')})" if hints else "") +
        ". Nothing was changed; choose four or more random words, or a long random string."
    )
