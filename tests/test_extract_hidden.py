"""Text a reader of the mail cannot see is never shown, and never a code or a link, on every path.

Each case hides "Your verification code is 999999" (and a verify link) one way, above the
visible "Your verification code is 123456": a mail client shows only the second, so the
agent must get only it. Through extract() for each technique, and through inbox_read over MCP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.extract import extract
from mailgent_mcp.inbox.parse import parse_message
from mailgent_mcp.mcp.inbox_tools import InboxProvider
from mailgent_mcp.mcp.server import build_server
from mailgent_mcp.mcp.vault_tools import VaultProvider
from mailgent_mcp.settings import Settings

from .conftest import ok
from .helpers.answers import inner_text, messages_of

# (A link is blue unless it says otherwise: this one takes the colour around it.)
HIDDEN = ('Your verification code is 999999 <a style="color:inherit" '
          'href="https://evil.example/verify?token=hiddenhiddenhiddenhidden">Verify your email</a>')
VISIBLE = ('<p>Your verification code is 123456</p>'
           '<a href="https://service.example/verify?token=visiblevisiblevisible">Verify your email</a>')


def styled(rule: str, element: str = '<div class="h">{}</div>') -> str:
    """A mail whose <style> block holds rule, the hidden part inside element."""
    return f"<html><head><style>{rule}</style></head><body>{element.format(HIDDEN)}{VISIBLE}</body></html>"


def inline(style: str, around: str = "") -> str:
    """A mail whose hidden part has the inline style (inside an element with the style `around`)."""
    inner = f'<div style="{style}">{HIDDEN}</div>'
    return f'<div style="{around}">{inner}</div>{VISIBLE}' if around else inner + VISIBLE


HIDING = {
    # by a rule of a <style> block, for a class, an id, a tag, a tag with a class, or a list of selectors
    "class display:none": styled(".h{display:none}"),
    "id visibility:hidden": styled("#pre { visibility: hidden }", '<div id="pre">{}</div>'),
    "tag.class font-size:0": styled("div.h{font-size:0px}"),
    "tag rule": styled("span{display:none}", "<span>{}</span>"),
    "selector list !important": styled("p.x, .h , #y {display:none !important}"),
    "two classes, comment": styled("/* pre */ .h.k{opacity:0}", '<div class="k h">{}</div>'),
    "class max-height": styled(".h{max-height:0;overflow:hidden}"),
    "a comment in the value": inline("display:/* x */none"),
    "CSS escapes": inline("d\\69 splay: n\\6f ne"),
    "!important spaced": styled(".h{display:none ! important}", '<div class="h" style="display:block">{}</div>'),
    "@media a desktop matches": styled("@media only screen and (min-width: 480px) { .h { display: none } }"),
    "class beats a later inline display": styled(".h{display:none!important}", '<div class="h" style="display:block">{}</div>'),
    "a descendant rule": styled("body .wrap .h{display:none}", '<div class="wrap"><div class="h">{}</div></div>'),
    "a child rule": styled("div > span.h{visibility:hidden}", '<div><span class="h">{}</span></div>'),
    "an attribute selector": styled('[data-pre="1"]{display:none}', '<div data-pre="1">{}</div>'),
    "a pseudo-class": styled("p:first-child{display:none}", "<div><p>{}</p></div>"),
    # the same colour as the background, or nearly
    "white on white": inline("color:#ffffff"),
    "white on white, short hex": inline("color:#FFF"),
    "named colour on the body's": '<body bgcolor="black"><p style="color:white">x</p>'
                                  f'<div style="color:black">{HIDDEN}</div><div style="color:white">{VISIBLE}</div></body>',
    "rgb() on white": inline("color:rgb(255, 255, 255)"),
    "near-equal": inline("color:#fefefe"),
    "on a dark ancestor": inline("color:#101010", around="background-color:#111111"),
    "font colour on bgcolor": (f'<table bgcolor="#336699"><tr><td><font color="#336699">{HIDDEN}</font></td></tr></table>'
                               f'{VISIBLE}'),
    "transparent": inline("color:transparent"),
    "nearly no alpha": inline("color:rgba(0, 0, 0, 0.02)"),
    "class colour": styled(".h{color:#fff}"),
    "snow on white": inline("color:snow"),
    "hsl white": inline("color:hsl(0, 0%, 100%)"),
    # off-screen
    "absolute, far left": inline("position:absolute;left:-9999px"),
    "fixed, far up": inline("position: fixed; top: -10000px"),
    "text-indent": inline("text-indent:-9999px"),
    "clip rect": inline("position:absolute;clip:rect(0 0 0 0)"),
    "clip rect with commas": inline("position:absolute;clip: rect(1px, 1px, 1px, 1px)"),
    "scale(0)": inline("transform:scale(0)"),
    # tiny
    "font-size 1px": inline("font-size:1px"),
    "the font shorthand": inline("font:0/0 a"),
    "a zero font size around, none set inside": inline("color:#000", around="font-size:0"),
    "1px box": inline("width:1px;height:1px;overflow:hidden"),
    "max-height 1px": inline("max-height:1px"),
    "max-width 1px": inline("max-width:1px;overflow:hidden"),
}


@pytest.mark.parametrize("html", HIDING.values(), ids=HIDING.keys())
def test_hidden_text_is_not_shown_nor_a_code_nor_a_link(html: str) -> None:
    found = extract(subject="Welcome", html=html)
    assert "999999" not in found.extracted_text and "Verify your email <https://evil" not in found.extracted_text
    assert [c.code for c in found.codes] == ["123456"]
    assert "123456" in found.extracted_text
    assert [link.url for link in found.links] == ["https://service.example/verify?token=visiblevisiblevisible"]


SHOWN = {
    "white on a dark cell": '<table><tr><td bgcolor="#1a73e8"><a style="color:#ffffff" '
                            'href="https://service.example/verify?token=visiblevisiblevisible">Your verification '
                            'code is 123456</a></td></tr></table>',
    "white on a background set by a class": '<style>.btn{background:#1a73e8}</style><p class="btn" '
                                            'style="color:#fff">Your verification code is 123456</p>',
    "white on an image": '<div style="background:url(https://img.example/bg.png)"><p style="color:#fff">'
                         'Your verification code is 123456</p></div>',
    "hidden only on small screens": '<style>@media (max-width:600px){.d{display:none}}</style>'
                                    '<p class="d">Your verification code is 123456</p>',
    "a rule overridden by a later one": '<style>.d{display:none} .d{display:block}</style>'
                                        '<p class="d">Your verification code is 123456</p>',
    "grey on white": '<p style="color:#888">Your verification code is 123456</p>',
    "a rule for another element": '<style>.other{display:none}</style><p class="d">Your verification code is 123456</p>',
    "a selector with a combinator": '<style>.x .d{display:none}</style><p class="d">Your verification code is 123456</p>',
    "a small but legible font": '<p style="font-size:11px">Your verification code is 123456</p>',
    # A zero font size on a wrapper closes the gaps between inline blocks (MJML's columns do it);
    # the blocks set their own size again.
    "a zero font size set back inside": '<div style="font-size:0px"><div style="display:inline-block;'
                                        'font-size:14px">Your verification code is 123456</div></div>',
    "a zero font size set back by a class": '<style>.col{font-size:13px}</style><table><tr><td style="font-size:0">'
                                            '<div class="col">Your verification code is 123456</div></td></tr></table>',
}


@pytest.mark.parametrize("html", SHOWN.values(), ids=SHOWN.keys())
def test_visible_text_stays_shown(html: str) -> None:
    found = extract(subject="Welcome", html=html)
    assert "123456" in found.extracted_text and [c.code for c in found.codes] == ["123456"]


def test_html_nested_too_deeply_to_render_shows_none_of_it() -> None:
    html = ("<div>" * 2500 + '<div style="display:none">Your verification code is 999999</div>'
            '<script>var code = "Your verification code is 888888";</script><p>more</p>')
    found = extract(subject="Welcome", text="Your verification code is 123456", html=html)
    assert "999999" not in found.extracted_text and "888888" not in found.extracted_text
    assert [c.code for c in found.codes] == ["123456"] and found.links == ()
    alone = extract(subject="Welcome", html=html)
    assert "999999" not in alone.extracted_text and "888888" not in alone.extracted_text and alone.codes == ()


async def test_hidden_text_is_neither_shown_nor_a_code_in_inbox_read(home: Path) -> None:
    cases = [*HIDING.values(), "<div>" * 2500 + f'<div style="display:none">{HIDDEN}</div>' + VISIBLE]
    async with await Inbox.open(home) as inbox:
        for html in cases:
            raw = (b"From: Service <no-reply@service.example>\r\nTo: agent@mailgent.localhost\r\n"
                   b"Subject: Welcome\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode())
            await inbox.add_local(parse_message(raw), ["agent@mailgent.localhost"])
    server = build_server(Settings(home=home), VaultProvider(home, {}), inbox=InboxProvider(home, {}))
    async with Client(server) as client:
        result = await client.call_tool("inbox_read", {"labels": ["all"], "limit": 100})
    messages = messages_of(ok(result))
    assert len(messages) == len(cases)
    for message in messages:
        assert "999999" not in inner_text(message["extractedText"])
        assert "999999" not in str(message["codes"]) and "evil.example" not in str(message["links"])
    assert sum(bool(m["codes"]) and m["codes"][0]["code"] == "123456" for m in messages) == len(HIDING)


def test_a_mail_of_many_images_and_line_breaks_is_not_taken_for_deep_nesting() -> None:
    # <img>, <br> and <body> nest nothing: a long newsletter full of them is read as usual.
    rows = "".join(f'<img src="https://cdn.example/{i}.png" alt=""><br>' for i in range(1500))
    html = f"<html><body><p>Your verification code is 614803.</p>{rows}</body></html>"
    result = extract(subject="Verify", html=html)
    assert "614803" in result.extracted_text
    assert [c.code for c in result.codes] == ["614803"]


def test_an_oversized_header_block_keeps_the_bodys_type_so_hidden_html_stays_hidden() -> None:
    # The block is cut before parsing; the body's Content-Type, written after the huge
    # subject, must survive the cut, or the HTML is read as plain text, hidden parts and all.
    hidden = '<div style="display:none">Your code is 111222.</div>'
    raw = ("From: a@example.com\r\nTo: b@example.com\r\nSubject: " + "x" * 140_000 + "\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           f"<html><body>{hidden}<p>Your code is 734905.</p></body></html>\r\n").encode()
    parsed = parse_message(raw, trusted_authserv_ids=())
    assert parsed.extraction is not None
    assert "111222" not in parsed.extraction.extracted_text
    assert [c.code for c in parsed.extraction.codes] == ["734905"]
