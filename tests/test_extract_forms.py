"""Extraction's two forms (pure Python and compiled by mypyc) agree; the reused lexbor document
leaks nothing between mails; a chunk parsed in two phases gives what one message at a time does.

The compiled form is built by `pip install` (setup.py) where mypy and a C compiler are at hand,
as scripts/setup.sh does; where it was not built, the comparison is skipped and says so.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailgent_mcp import extract
from mailgent_mcp.extract_types import Extraction
from mailgent_mcp.parse import parse_chunk, parse_message

from .test_extract import marketing_html
from .test_extract_hidden import HIDING, SHOWN

CORPUS = Path(__file__).parent / "data" / "verification"
SOURCE = Path(extract.__file__)


def pure_module() -> ModuleType:
    """extract.py loaded anew under another name: its pure-Python form (the compiled one is bound only as mailgent_mcp.extract)."""
    spec = importlib.util.spec_from_file_location("extract_pure_for_test", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fields_of(raw: bytes) -> dict[str, Any]:
    parsed = parse_message(raw, extracting=False)
    return {"subject": parsed.subject, "text": parsed.text, "html": parsed.html, "from_addr": parsed.from_addr,
            "auth_results": parsed.auth_results}


def test_the_compiled_form_gives_the_pure_python_results() -> None:
    native = extract.native_module()
    if native is None:
        pytest.skip("the compiled form is not built here (no mypy or C compiler at install), or extract.py "
                    "changed since it was: reinstall with scripts/setup.sh")
    assert extract.IMPLEMENTATION == "compiled (mypyc)"
    assert extract.extract is native.extract
    pure = pure_module()
    assert pure.IMPLEMENTATION == "pure Python" and pure.extract is not native.extract
    mails = [fields_of(path.read_bytes()) for path in sorted(CORPUS.glob("*.eml"))]
    mails.append({"subject": "Deals", "html": marketing_html("583920")})
    mails.append({"subject": "Your code", "text": "Order 4471 shipped.\n\nYour code: 482913\n\n-- \nShop",
                  "html": "<body style='display:none'><p>hidden 111111</p></body>"})
    mails += [{"subject": "Hidden", "html": html} for html in [*HIDING.values(), *SHOWN.values()]]
    for fields in mails:
        compiled, reference = native.extract(**fields), pure.extract(**fields)
        assert isinstance(compiled, Extraction) and isinstance(reference, Extraction)
        assert compiled == reference, fields.get("subject")


def test_a_stale_or_leftover_compiled_form_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Built from another version of the source (an editable install edited since): not used.
    edited = tmp_path / "extract.py"
    edited.write_bytes(SOURCE.read_bytes() + b"\n# edited\n")
    assert extract.native_module(source=str(edited)) is None
    # A copy of the source left behind as .py is pure Python: not taken for the compiled form.
    leftover = tmp_path / "leftover_native_for_test.py"
    leftover.write_text(f"SOURCE_SHA256 = {__import__('hashlib').sha256(SOURCE.read_bytes()).hexdigest()!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert extract.native_module(name="leftover_native_for_test") is None
    assert extract.native_module(name="no_such_module_for_test") is None
    # Turned off by the environment.
    monkeypatch.setenv("MAILGENT_MCP_PURE_PYTHON", "1")
    assert extract.native_module() is None


def test_pure_python_can_be_asked_for() -> None:
    env = {**os.environ, "MAILGENT_MCP_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", "import mailgent_mcp.extract as e; print(e.IMPLEMENTATION)"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "pure Python"


def in_use() -> ModuleType:
    """The module whose html_to_text runs: the compiled form where it is used."""
    return extract.native_module() or extract


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

    module = in_use()
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
    module = in_use()
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
