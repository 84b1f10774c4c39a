"""The reused lexbor document leaks nothing between mails; a chunk parsed in two phases gives
what one message at a time does."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

from mailgent_mcp.inbox import extract
from mailgent_mcp.inbox.extract import html as html_module
from mailgent_mcp.inbox.parse import parse_chunk, parse_message

CORPUS = Path(__file__).parent / "data" / "verification"


def fields_of(raw: bytes) -> dict[str, Any]:
    parsed = parse_message(raw, extracting=False)
    return {"subject": parsed.subject, "text": parsed.text, "html": parsed.html, "from_addr": parsed.from_addr,
            "auth_results": parsed.auth_results}


def test_the_reused_document_leaks_nothing_from_one_mail_into_the_next() -> None:
    first = extract.html_to_text("<html><head><title>Old 111111</title></head><body><p>Code 111111</p>"
                                 "<a href='https://a.test/verify?t=aaaaaaaaaaaaaaaaaaaaaaaa'>Verify</a></body></html>")
    second = extract.html_to_text("<p>Your code is 222222</p>")
    assert "111111" in first.main and first.anchors
    assert second.main == "Your code is 222222" and second.anchors == [] and second.quoted == ""
    # The <head> is parsed as in a document: its title and style are not text.
    third = extract.html_to_text("<head><title>T 333</title><style>p{color:red}</style></head><body>Hi</body>")
    assert third.main == "Hi"


DOCTYPES = ["", "<!DOCTYPE html>", "<!doctype HTML>", '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
            '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">', "<!-- a comment -->\n<!DOCTYPE html>",
            "\ufeff<!DOCTYPE html>", "text first<!DOCTYPE html>"]
BROKEN = ["<p>", "</p>", "<table>", "<tr>", "<td>", "</td>", "<b>", "</div>", "<div>", "<li>", "<ul>", "</body>",
          "<body style='display:none'>", "<html>", "<head>", "<title>t</title>", "<form>", "<select>", "<option>",
          "<frameset>", "<template>", "<a href='https://x.test/verify?t=abcdefghijklmnopqrstuvwxyz'>", "</a>", "text ",
          "<br>", "<!-- c -->"]


def test_the_kept_documents_build_the_trees_a_document_parse_builds() -> None:
    from selectolax.lexbor import LexborHTMLParser

    module = html_module
    bodies = [fields_of(path.read_bytes())["html"] for path in sorted(CORPUS.glob("*.eml"))]
    bodies = [html.split(">", 1)[1] if html.lower().startswith("<!doctype") else html for html in bodies if html]
    rng = random.Random(5)
    for case in range(600):
        html = DOCTYPES[case % len(DOCTYPES)] + rng.choice(bodies)
        if case % 4:  # and three in four broken at random places
            parts = html.split("<")
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(len(parts))
                tag = rng.choice(BROKEN)
                parts.insert(at, tag[1:] if at else tag)
            html = "<".join(parts)
        document = LexborHTMLParser(html)
        assert module._parse_html(html).html == (document.body or document.root).html, html[:200]


def test_a_hidden_body_hides_the_whole_mail_as_a_document_parse_does() -> None:
    assert extract.html_to_text("<html><body style='display:none'><p>secret 111111</p></body></html>").main == ""


def test_the_document_is_replaced_after_its_share_of_html() -> None:
    module = html_module
    state = module._DOCUMENTS
    extract.html_to_text("<p>x</p>")
    documents = state.documents
    for _ in range(3):
        extract.html_to_text("<p>" + "y" * (module.DOCUMENT_REUSE_CHARS // 2) + "</p>")
    assert state.documents is not documents  # new documents after DOCUMENT_REUSE_CHARS characters
    assert state.parsed <= module.DOCUMENT_REUSE_CHARS + 1000 + module.DOCUMENT_REUSE_CHARS // 2 + 7


def test_threads_parse_into_documents_of_their_own() -> None:
    results: dict[int, list[str]] = {}

    def render(number: int) -> None:
        results[number] = [extract.html_to_text(f"<p>mail {number} line {i}</p>").main for i in range(200)]

    threads = [threading.Thread(target=render, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for number, texts in results.items():
        assert texts == [f"mail {number} line {i}" for i in range(200)]


def test_a_chunk_gives_what_one_message_at_a_time_gives() -> None:
    raws = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    raws.append(b"this is not a mail at all")
    assert parse_chunk(raws) == [parse_message(raw) for raw in raws]
    assert parse_chunk(raws, ("mx.receiver.test",)) == [parse_message(raw, ("mx.receiver.test",)) for raw in raws]
    unextracted = parse_chunk(raws, extracting=False)
    assert all(message.extraction is None for message in unextracted)
    assert unextracted == [parse_message(raw, extracting=False) for raw in raws]
