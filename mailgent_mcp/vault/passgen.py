"""Passwords the vault makes: random, from the character classes a service accepts.

Agents asked to invent a password pick short, guessable ones; the vault makes one with the
operating system's random source (`secrets`) instead, at least one character of each class
asked for, and stores it before anyone sees it.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from mailgent_mcp.errors import InvalidInput

DEFAULT_LENGTH = 20
MIN_LENGTH = 8
MAX_LENGTH = 128
# Symbols that sign-up forms accept almost everywhere; quotes, backslash and spaces are left out.
DEFAULT_SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
_ALLOWED_SYMBOLS = frozenset(string.punctuation)


@dataclass(frozen=True)
class PasswordRule:
    """What a service requires: the length and which classes of characters (symbols: the ones it allows)."""

    length: int = DEFAULT_LENGTH
    lower: bool = True
    upper: bool = True
    digits: bool = True
    symbols: str = DEFAULT_SYMBOLS

    def check(self) -> None:
        """Refuse a rule no password can meet, naming the fix."""
        if isinstance(self.length, bool) or not isinstance(self.length, int) or not \
                MIN_LENGTH <= self.length <= MAX_LENGTH:
            raise InvalidInput(f"A generated password is {MIN_LENGTH}-{MAX_LENGTH} characters long.")
        if not set(self.symbols) <= _ALLOWED_SYMBOLS:
            raise InvalidInput("symbols may hold only ASCII punctuation (such as !#$%&*+-=?@^_), no letters, "
                               "digits or spaces.")
        if not self.classes():
            raise InvalidInput("Allow at least one class of characters: lower, upper, digits or symbols.")
        if len(self.classes()) > self.length:
            raise InvalidInput("The length is shorter than the number of character classes asked for.")

    def classes(self) -> list[str]:
        """The character classes in use, each as its alphabet."""
        chosen = [string.ascii_lowercase if self.lower else "", string.ascii_uppercase if self.upper else "",
                  string.digits if self.digits else "", "".join(sorted(set(self.symbols)))]
        return [c for c in chosen if c]


def generate(rule: PasswordRule) -> str:
    """A random password of rule.length with at least one character of each class."""
    rule.check()
    classes = rule.classes()
    alphabet = "".join(classes)
    chars = [secrets.choice(c) for c in classes]  # one of each class ...
    chars += [secrets.choice(alphabet) for _ in range(rule.length - len(chars))]  # ... the rest from all
    secrets.SystemRandom().shuffle(chars)  # so the guaranteed ones are not at known places
    return "".join(chars)
