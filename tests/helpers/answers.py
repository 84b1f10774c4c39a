"""Checks of inbox answers that tests share: the fence markers an answer holds, and sender text in bounds.

The bounds and the look-alike brackets are written out here, not imported from the package:
they are what the README promises, checked against what the server does.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from mcp_types import CallToolResult

# The documented bounds (README, "What the agent gets from each message").
SUBJECT, NAME, ADDRESS, CODE, EVIDENCE, LINK_TEXT, URL, AUTH, LABEL = 256, 128, 254, 32, 120, 120, 4096, 254, 64
TEXT = 4000
RECIPIENTS, CODES, LINKS = 20, 5, 10

# What a reader takes for an angle bracket: ASCII, NFKC's small and full-width forms, and look-alikes.
BRACKETS = "<>\ufe64\ufe65\uff1c\uff1e\u2039\u203a\u00ab\u00bb\u2329\u232a\u3008\u3009\u27e8\u27e9\u276e\u276f" \
           "\u276c\u276d\u2770\u2771\u02c2\u02c3\u1438\u1433\u29fc\u29fd"
# One character that reads as two or three of them.
MULTIPLE = "\u226a\u226b\u22d8\u22d9\u300a\u300b\u27ea\u27eb"
# Two or more on a line (spaces between them or not), or one that reads as several.
BRACKET_RUN = re.compile(f"[{BRACKETS}{MULTIPLE}](?:[^\\S\\n]*[{BRACKETS}{MULTIPLE}])+|[{MULTIPLE}]")
OPEN = re.compile(r"\A<<<EXTERNAL EMAIL CONTENT id=([0-9a-f]{12}): [^<>]*>>>\n")
CLOSE = "\n<<<END OF EXTERNAL EMAIL CONTENT id={}>>>"


def answer_texts(result: CallToolResult) -> list[str]:
    """Everything the model may read of a tool result: its text content and its structured content."""
    texts = [getattr(block, "text", "") for block in result.content]
    texts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return texts


def messages_of(structured: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of an inbox_read or inbox_wait answer."""
    if "messages" in structured:
        return list(structured["messages"])
    return [structured["message"]] if structured.get("message") else []


def inner_text(extracted: str) -> str:
    """The sender's text between the markers of one fenced extractedText (which must be well formed)."""
    opened = OPEN.match(extracted)
    assert opened, extracted[:300]
    close = CLOSE.format(opened.group(1))
    assert extracted.endswith(close), extracted[-300:]
    return extracted[opened.end():-len(close)]


def assert_only_the_servers_markers(result: CallToolResult) -> None:
    """The answer holds the markers of its fenced texts and no others, also after NFKC; each text well formed."""
    assert not result.is_error, result.content
    structured = result.structured_content
    assert structured is not None
    fenced = [m["extractedText"] for m in messages_of(structured) if m.get("extractedText") is not None]
    for shown in answer_texts(result):
        for form in (shown, unicodedata.normalize("NFKC", shown)):
            assert form.count("<<<") == 2 * len(fenced), form[:2000]
            assert form.count(">>>") == 2 * len(fenced), form[:2000]
    ids = [inner_id(text) for text in fenced]
    for shown in answer_texts(result):
        for form in (shown, unicodedata.normalize("NFKC", shown)):
            assert all(form.count(f"id={i}") == 2 * ids.count(i) for i in set(ids))


def inner_id(extracted: str) -> str:
    """The id of a fenced text's markers (checking that both are there)."""
    inner_text(extracted)
    opened = OPEN.match(extracted)
    assert opened is not None
    return opened.group(1)


def _line(value: Any, bound: int, field: str) -> None:
    assert isinstance(value, str), (field, value)
    assert len(value) <= bound, (field, len(value))
    bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    assert not bad, (field, bad[:5])
    assert not BRACKET_RUN.search(value), (field, value[:300])


def assert_within_bounds(message: dict[str, Any]) -> None:
    """Every sender string of a shown message is one clean line within its bound (the text: see inner_text)."""
    for field, bound in (("subject", SUBJECT), ("from_name", NAME), ("from", ADDRESS)):
        if message.get(field) is not None:
            _line(message[field], bound, field)
    assert len(message["to"]) <= RECIPIENTS
    for address in message["to"]:
        _line(address, ADDRESS, "to")
    for label in message["labels"]:
        _line(label, LABEL, "labels")
    assert len(message["codes"]) <= CODES and len(message["links"]) <= LINKS
    for code in message["codes"]:
        _line(code["code"], CODE, "code")
        _line(code["evidence"], EVIDENCE, "evidence")
    for link in message["links"]:
        _line(link["text"], LINK_TEXT, "link text")
        _line(link["url"], URL, "url")
        assert re.fullmatch(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", link["url"]), link["url"][:300]
    for key, value in (message.get("auth") or {}).items():
        if isinstance(value, str):
            _line(value, AUTH, f"auth.{key}")
    if message.get("extractedText") is not None:
        text = inner_text(message["extractedText"])
        assert len(text) <= TEXT, len(text)
        bad = [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") and c not in "\n\t"]
        assert not bad, bad[:5]
        assert not BRACKET_RUN.search(text), text[:300]
