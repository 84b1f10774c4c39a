"""What an agent needs from a verification mail: readable text, one-time codes, links, sender trust.

Plain functions over the parsed fields of one message (subject, text/plain, text/html,
From, Authentication-Results); they know nothing of MCP, IMAP or the cache. `parse.py`
calls `extract` in its worker process, inside the parse time limit, so hostile HTML
cannot stall the server; `inbox reindex` calls it again on the cached fields.

- Text: HTML goes through selectolax (lexbor, a C HTML5 parser, several times faster
  than html-text and inscriptis on a large mail), parsed into a kept
  document (see _parse_html), and one walk of its tree that skips style, script, images
  and whatever a reader of the mail would not see (hidden by an inline style or a rule of
  its <style> blocks, off the screen, tiny, or in the colour behind it: see _look), and
  keeps the target of a verify, sign-in or reset link beside its text. HTML that leaves
  thousands of elements open (lexbor's tree building is quadratic in depth) is not
  rendered at all (see html_to_text). Quoted replies, signatures and legal footers are
  cut; the rest is NFKC-normalised and capped with a note.
- Codes: candidates of known shapes in the subject and the text (dates, times, prices,
  phone numbers, card numbers, URLs masked first), kept only near a one-time-code
  keyword of one of 11+ languages and away from order, invoice, phone, card, postcode
  and promotion words. A code is returned as one types it: group separators dropped
  ("123-456" -> "123456") and a letter prefix printed before the digits dropped
  ("G-123456" -> "123456": the prefix is a label the service shows beside its box).
- Links: from both bodies; ranked verify, magic_signin, reset, other, unsubscribe.
  Never opened: a tracking redirect is returned as given (its inner URL only helps
  to classify it).
- Auth: Authentication-Results headers are read only from an authserv-id the account
  trusts (its own receiving server: RFC 8601 §5), starting at the topmost such header;
  a header of any other id may be the sender's. Where no trusted header vouches, the
  results of DKIM verified in the parser worker (dkim_check.py) may. The headers are read
  by a small RFC 8601 tokenizer here (authres was slower than the whole parse). DMARC-style
  relaxed alignment of the From domain with a passing DKIM or SPF domain uses the bundled
  Public Suffix List, offline.

Most regular expressions here are written so that Python's re can jump to where a match
may begin (see fast_alternation in common.py).

Modules: common (normalising, limits, regex helpers), html, text, codes, links, auth, and
result (the one result type, Extraction, with its Code, Link and SenderAuth).
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Sequence

from mailgent_mcp.inbox.extract.auth import (
    authserv_id_of,
    authserv_trusted,
    organisational_domain,
    receiver_stamp,
    sender_auth,
)
from mailgent_mcp.inbox.extract.codes import find_codes
from mailgent_mcp.inbox.extract.common import ENTITY, MAX_HTML_CHARS, MAX_SCAN_CHARS, MAX_TEXT_CHARS, TEXT_CAP, normalise
from mailgent_mcp.inbox.extract.html import html_to_text
from mailgent_mcp.inbox.extract.links import find_links
from mailgent_mcp.inbox.extract.result import EXTRACTOR_VERSION, Code, Extraction, Link, Rendered, SenderAuth
from mailgent_mcp.inbox.extract.text import cap_text, prefer_html, split_quoted, strip_footer, strip_signature

# What the rest of the package uses; each lives in the module that says what it is.
__all__ = [
    "EXTRACTOR_VERSION", "MAX_HTML_CHARS", "MAX_SCAN_CHARS", "MAX_TEXT_CHARS", "TEXT_CAP", "Code", "Extraction", "Link",
    "Rendered", "SenderAuth", "authserv_id_of", "authserv_trusted", "cap_text", "extract", "find_codes", "find_links",
    "html_to_text", "normalise", "organisational_domain", "receiver_stamp", "sender_auth", "split_quoted",
    "strip_footer", "strip_signature",
]


def extract(*, subject: str = "", text: str = "", html: str = "", from_addr: str | None = None,
            auth_results: Sequence[str] = (), trusted_authserv_ids: Sequence[str] = (),
            local_dkim: Sequence[tuple[str, str]] | None = None, cap: int = TEXT_CAP) -> Extraction:
    """Extract text, codes, links and sender trust from one message's parsed fields.

    trusted_authserv_ids: whose Authentication-Results count (none by default); local_dkim:
    (d= domain, result) of the DKIM signatures verified here, when they were.
    """
    rendered = html_to_text(html) if html.strip() else None
    text = text[:MAX_TEXT_CHARS]
    plain = normalise(html_lib.unescape(text)) if ENTITY.search(text) else normalise(text)
    plain_main, plain_quoted = split_quoted(plain)
    if rendered is not None and prefer_html(plain_main, rendered.main):
        main, quoted = split_quoted(rendered.main)
        quoted = "\n".join(q for q in (quoted, rendered.quoted) if q)
    else:
        main, quoted = plain_main, plain_quoted
    main = strip_footer(strip_signature(main))
    subject = normalise(subject)
    links = find_links(rendered.anchors if rendered else [], plain, subject)
    codes = find_codes(subject, main, quoted)
    auth = sender_auth(auth_results, from_addr, trusted_authserv_ids, local_dkim)
    # A mail of quoted lines only (a forward) shows them, not nothing.
    return Extraction(cap_text(main or quoted, cap), tuple(codes), tuple(links), auth)
