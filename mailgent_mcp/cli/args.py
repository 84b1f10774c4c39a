"""Argument checks every command shares: whole numbers in a range, text that is valid UTF-8."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mailgent_mcp.errors import InvalidInput

FLAG_OF = {"sender": "--from", "name": "NAME", "prefix": "PREFIX", "n": "-n"}


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high (argparse then exits 2 naming the option)."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return value

    return parse


def check_text_arguments(args: argparse.Namespace) -> None:
    """Refuse an argument that is not UTF-8: argv holds it as surrogates, which no file or database can store."""
    for dest, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    flag = FLAG_OF.get(dest, "--" + dest.replace("_", "-"))
                    raise InvalidInput(f"{flag} is not valid UTF-8 text; pass it in UTF-8 (check the terminal's "
                                       "locale).") from None
