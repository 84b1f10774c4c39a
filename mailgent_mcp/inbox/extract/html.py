"""HTML as a reader of the mail sees it: lexbor's tree walked once, hidden content left out, link targets kept."""

from __future__ import annotations

import itertools
import re
import threading
from functools import lru_cache
from typing import Any

import webcolors

from mailgent_mcp.inbox.extract.common import MAX_HTML_CHARS, normalise
from mailgent_mcp.inbox.extract.links import SHOWN_KINDS, link_kind
from mailgent_mcp.inbox.extract.result import Rendered

_SKIP_TAGS = frozenset({"head", "style", "script", "noscript", "template", "title", "meta", "link", "img", "svg",
                        "picture", "video", "audio", "object", "iframe", "map", "button-hidden", "-comment"})
_BLOCK_TAGS = frozenset({"p", "div", "br", "tr", "table", "tbody", "thead", "tfoot", "h1", "h2", "h3", "h4", "h5",
                         "h6", "ul", "ol", "li", "section", "article", "header", "footer", "main", "aside", "center",
                         "blockquote", "pre", "hr", "dl", "dt", "dd", "address", "form", "fieldset", "nav", "body"})
_CELL_TAGS = frozenset({"td", "th"})
_PARAGRAPH_TAGS = frozenset({"p", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "ul", "ol"})
# What is written after a cell, a paragraph or another block.
_SEPARATOR_AFTER = {**dict.fromkeys(_BLOCK_TAGS, "\n"), **dict.fromkeys(_PARAGRAPH_TAGS, "\n\n"),
                    **dict.fromkeys(_CELL_TAGS, "\t")}
_QUOTE_CLASS = re.compile(r"gmail_quote|yahoo_quoted|moz-cite-prefix|protonmail_quote|OutlookMessageHeader")
_QUOTE_ID = re.compile(r"divRplyFwdMsg|appendonsend|reply-intro|isForwardContent")



#
# A mail client hides an element by its inline style, by a rule of the mail's <style> blocks
# (simple selectors only: tag, .class, #id and their compounds, in lists; rules inside an
# @media query that a desktop screen matches count too), or draws its text in the colour of
# what lies behind it. _look tells, for one element, whether it is hidden and which text and
# background colours it sets; html_to_text carries the colours down the tree. Colours are
# 0xRRGGBB ints, or one of these:
_UNSET = -1  # the element does not set it (a text colour is inherited, a background shows through)
_TRANSPARENT = -2  # transparent text: never seen
_PICTURE = -3  # a background image or gradient: text on it may be seen whatever its colour
_INHERIT = -4  # the text colour of the parent, said outright ("inherit": a link then is not blue)
_WHITE, _BLACK, _LINK_BLUE = 0xFFFFFF, 0x000000, 0x0000EE  # a mail client's defaults
_MIN_CONTRAST = 1.2  # WCAG contrast ratio below which text is taken for unseen (#fefefe on white: 1.01)
_FAR = 500.0  # px: an offset this far out puts an element off the screen
_TINY = 2.0  # px: a font or box smaller than this shows nothing legible
_BODY_PX = 16.0  # a mail client's default font size
_DESKTOP_WIDTH = 800.0  # px: the screen @media queries are evaluated for

_DECLARATION = re.compile(r"([a-z-]+)\s*:\s*([^;]*)")
_LENGTH = re.compile(r"(-?(?:\d+\.?\d*|\.\d+))\s*(px|pt|em|rem|%|)\s*$")
_PX_PER = {"px": 1.0, "": 1.0, "pt": 4 / 3, "em": 16.0, "rem": 16.0, "%": 0.16}  # % of a 16px font
_CLIP_HIDES = re.compile(r"rect\(\s*(?:-?[01](?:\.\d+)?(?:px)?\s*,?\s*){4}\)")
_CLIP_PATH_HIDES = re.compile(r"inset\(\s*(?:[5-9]\d|100)(?:\.\d+)?%|circle\(\s*0(?:px|%)?\s*[)a]")
_TRANSFORM_HIDES = re.compile(r"scale[xy]?\(\s*0*\.?0*\s*[,)]|translate[xy]?\(\s*-\d{4,}")
_HEX_COLOUR = re.compile(r"#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})\Z")
_COLOUR_TOKEN = re.compile(r"#[0-9a-f]{3,8}\b|(?:rgba?|hsla?)\([^)]*\)|[a-z]+")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)%?")
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-f]{1,6})\s?|(.))", re.S)
_IMPORTANT = re.compile(r"\s*!\s*important")


def _declarations(style: str) -> dict[str, str]:
    """The declarations of a style attribute or rule body, lower case, "!important" kept at the end of a value."""
    style = style[:4000].lower()
    if "/*" in style:
        style = _CSS_COMMENT.sub(" ", style)
    if "\\" in style:  # "d\isplay: n\6f ne" is "display: none" to a browser
        style = _CSS_ESCAPE.sub(_css_unescape, style)
    decls = {}
    for name, value in _DECLARATION.findall(style):
        value = " ".join(value.split())
        decls[name] = _IMPORTANT.sub(" !important", value) if "!" in value else value
    return decls


def _css_unescape(escape: re.Match[str]) -> str:
    code = escape.group(1)
    if code is None:
        return escape.group(2)
    number = int(code, 16)
    return chr(number) if 0 < number <= 0x10FFFF and not 0xD800 <= number <= 0xDFFF else "\ufffd"


def _px(value: str) -> float | None:
    """A CSS length in px (em and % of a 16px font), or None when it is not a plain length."""
    found = _LENGTH.match(value.replace("!important", "").strip())
    if found is None:
        return None
    return float(found.group(1)) * _PX_PER[found.group(2)]


def _below(decls: dict[str, str], name: str, limit: float) -> bool:
    value = decls.get(name)
    px = _px(value) if value else None
    return px is not None and px < limit


_HIDING = frozenset({"display", "visibility", "mso-hide", "content-visibility", "opacity", "max-height",
                     "text-indent", "overflow", "overflow-y", "margin-left", "margin-top", "position",
                     "transform", "clip-path"})  # the properties _hides looks at first


def _hides(decls: dict[str, str]) -> bool:
    """Whether declarations hide their element: not displayed, transparent, tiny, clipped away or off the screen.

    Not a tiny font: an element inside may set its size again (a font-size:0 wrapper closes
    the gaps between inline blocks, whose text is of normal size), so the walk decides that
    text by text, as it does colours (see _font_px).
    """
    if decls.keys().isdisjoint(_HIDING):
        return False  # most styles: colours, padding, borders
    get = decls.get
    if get("display", "").startswith("none") or get("visibility", "").startswith(("hidden", "collapse")):
        return True
    if get("mso-hide", "").startswith("all") or get("content-visibility", "").startswith("hidden"):
        return True
    opacity = _NUMBER.match(get("opacity", ""))
    if opacity is not None and float(opacity.group().rstrip("%")) / (100 if "%" in opacity.group() else 1) < 0.05:
        return True
    if _below(decls, "max-height", _TINY) or _below(decls, "text-indent", -_FAR):
        return True
    overflow_hidden = get("overflow", "").startswith(("hidden", "clip")) or "hidden" in get("overflow-y", "")
    if overflow_hidden and (_below(decls, "height", _TINY) or _below(decls, "width", _TINY)
                            or _below(decls, "max-width", _TINY)):
        return True
    if _below(decls, "margin-left", -2 * _FAR) or _below(decls, "margin-top", -2 * _FAR):
        return True
    if get("position", "").startswith(("absolute", "fixed")) and (
            any(_below(decls, side, -_FAR) for side in ("left", "top", "right"))
            or _CLIP_HIDES.search(get("clip", ""))):
        return True
    return bool(_TRANSFORM_HIDES.search(get("transform", "")) or _CLIP_PATH_HIDES.search(get("clip-path", "")))


@lru_cache(maxsize=1024)
def _css_colour(value: str) -> int:
    """A CSS colour value as 0xRRGGBB, _TRANSPARENT, or _UNSET where it names none (inherit, var(), ...)."""
    value = value.replace("!important", "").strip()
    if value == "transparent":
        return _TRANSPARENT
    if value in ("inherit", "currentcolor", "unset"):
        return _INHERIT
    if value == "initial":
        return _BLACK
    if value.startswith("#"):
        if not _HEX_COLOUR.match(value):
            return _UNSET
        digits = value[1:]
        if len(digits) in (4, 8) and int(digits[len(digits) // 4 * 3:], 16) < (2 if len(digits) == 4 else 26):
            return _TRANSPARENT  # (nearly) no alpha
        return int("".join(d * 2 for d in digits[:3]) if len(digits) < 6 else digits[:6], 16)
    if value.startswith(("rgb", "hsl")):
        return _functional_colour(value)
    try:
        red, green, blue = webcolors.name_to_rgb(value)
    except ValueError:
        return _UNSET
    return int(red) << 16 | int(green) << 8 | int(blue)


def _functional_colour(value: str) -> int:
    """rgb(), rgba(), hsl() or hsla() as 0xRRGGBB (or _TRANSPARENT for a zero alpha)."""
    numbers = _NUMBER.findall(value)
    if len(numbers) < 3:
        return _UNSET
    if len(numbers) > 3 and float(numbers[3].rstrip("%")) / (100 if numbers[3].endswith("%") else 1) < 0.1:
        return _TRANSPARENT  # (nearly) no alpha
    if value.startswith("rgb"):
        red, green, blue = (float(n[:-1]) * 2.55 if n.endswith("%") else float(n) for n in numbers[:3])
    else:
        red, green, blue = _hsl(float(numbers[0].rstrip("%")), float(numbers[1].rstrip("%")) / 100,
                                float(numbers[2].rstrip("%")) / 100)
    channels = [max(0, min(255, round(c))) for c in (red, green, blue)]
    return channels[0] << 16 | channels[1] << 8 | channels[2]


def _hsl(hue: float, saturation: float, lightness: float) -> tuple[float, float, float]:
    """CSS Color 4 §7.1: hsl() as red, green and blue, 0-255."""
    def channel(n: int) -> float:
        k = (n + hue / 30) % 12
        a = saturation * min(lightness, 1 - lightness)
        return 255 * (lightness - a * max(-1.0, min(k - 3, 9 - k, 1.0)))

    return channel(0), channel(8), channel(4)


@lru_cache(maxsize=256)
def _attribute_colour(value: str) -> int:
    """A bgcolor, text or color attribute as 0xRRGGBB (HTML's legacy colour parsing), _UNSET if it names none."""
    try:
        red, green, blue = webcolors.html5_parse_legacy_color(value)
    except ValueError:
        return _UNSET
    return int(red) << 16 | int(green) << 8 | int(blue)


def _background(decls: dict[str, str]) -> int:
    """The background the declarations paint: a colour, _PICTURE, _TRANSPARENT or _UNSET."""
    for name in ("background-image", "background"):
        value = decls.get(name, "")
        if "url(" in value or "gradient" in value or "image-set" in value:
            return _PICTURE
    paint = decls.get("background-color") or decls.get("background")
    if not paint:
        return _UNSET
    for token in _COLOUR_TOKEN.findall(paint):
        colour = _css_colour(token)
        if colour >= 0 or colour == _TRANSPARENT:
            return colour
    return _UNSET


@lru_cache(maxsize=4096)  # a template repeats the same few style attributes
def _style_look(style: str) -> tuple[bool, int, int, float]:
    """(hidden, text colour, background, font size) of an inline style alone."""
    return _look_of(_declarations(style))


def _look_of(decls: dict[str, str]) -> tuple[bool, int, int, float]:
    if not decls:
        return False, _UNSET, _UNSET, _NO_SIZE
    colour = _css_colour(decls["color"]) if "color" in decls else _UNSET
    return _hides(decls), colour, _background(decls), _font_px(decls)


_NO_SIZE = -1.0  # the element does not set its font size: it inherits it
_FONT_SIZE = re.compile(r"(?:^|\s)(\d*\.?\d+(?:px|pt|em|rem|%)?)(?=\s*/|\s|$)")


def _font_px(decls: dict[str, str]) -> float:
    """The font size the declarations set, in px (from font-size, or the font shorthand), or _NO_SIZE."""
    value = decls.get("font-size")
    if value is None and "font" in decls:
        found = _FONT_SIZE.search(decls["font"].replace("!important", ""))
        value = found.group(1) if found else None
    px = _px(value) if value else None
    return _NO_SIZE if px is None or px < 0 else px


class _Sheet:
    """The rules of a mail's <style> blocks that a reader's screen applies, indexed by what they select.

    Simple selectors (tag, #id, .class and their compounds, the most of mail's) are matched
    here, by an index; others (descendants, children, attributes, pseudo-classes) by lexbor's
    own selector engine over the parsed body (see matched), up to MAX_COMPLEX_RULES of them.
    """

    __slots__ = ("by_key", "complex", "looks", "rules")

    def __init__(self) -> None:
        # (tag or "*", id, classes, specificity, normal declarations, !important ones), in the sheet's order
        self.rules: list[tuple[str, str, tuple[str, ...], int, dict[str, str], dict[str, str]]] = []
        self.by_key: dict[str, list[int]] = {}  # "#id", ".class" or "tag": the rules to try
        self.looks: dict[tuple[str, str, str, str], tuple[bool, int, int, float]] = {}
        # (selector, specificity, normal declarations, !important ones) of the other rules
        self.complex: list[tuple[str, int, dict[str, str], dict[str, str]]] = []

    def add(self, selectors: str, body: str) -> None:
        """A rule: its selector list and its declarations."""
        if not _RELEVANT.search(body):
            return  # it neither hides nor colours anything
        picked: list[tuple[str, str, tuple[str, ...]]] = []
        others: list[str] = []
        for selector in selectors.lower().split(","):
            found = _SIMPLE_SELECTOR.match(selector.strip())
            if found is None or not found.group():
                if selector.strip():
                    others.append(selector.strip())
                continue
            parts = _SELECTOR_PART.findall(found.group(2))
            ids = [part[1:] for part in parts if part[0] == "#"]
            if len(ids) < 2:
                picked.append((found.group(1) or "*", ids[0] if ids else "",
                               tuple(part[1:] for part in parts if part[0] == ".")))
        normal: dict[str, str] = {}
        important: dict[str, str] = {}
        for name, value in _declarations(body).items():
            if "!important" in value:
                important[name] = value.replace("!important", "").strip()
            else:
                normal[name] = value
        for selector in others:
            if len(self.complex) < MAX_COMPLEX_RULES:
                self.complex.append((selector, _specificity(selector), normal, important))
        if not picked or len(self.rules) >= MAX_CSS_RULES:
            return
        for tag, id_, classes in picked:
            key = f"#{id_}" if id_ else f".{classes[0]}" if classes else tag
            specificity = 10_000 * bool(id_) + 100 * len(classes) + (tag != "*")
            self.by_key.setdefault(key, []).append(len(self.rules))
            self.rules.append((tag, id_, classes, specificity, normal, important))

    def matched(self, root: Any) -> dict[int, list[int]]:
        """The complex rules each element of the parsed body matches: {mem_id: [rule index]}."""
        found: dict[int, list[int]] = {}
        for index, rule in enumerate(self.complex):
            try:
                nodes = root.css(rule[0])
            except Exception:
                continue
            for node in nodes[:MAX_COMPLEX_MATCHES]:
                found.setdefault(node.mem_id, []).append(index)
        return found

    def look(self, tag: str, attrs: dict[str, str | None], extra: list[int] | None = None,
             ) -> tuple[bool, int, int, float]:
        """(hidden, text colour, background, font size) of an element by these rules and its inline style.

        extra: the complex rules this very element matches (see matched), if any.
        """
        id_ = (attrs.get("id") or "").lower()
        class_ = (attrs.get("class") or "").lower()
        style = attrs.get("style") or ""
        if extra:
            return self._look_anew(tag, id_, class_.split(), style, extra)
        key = (tag, id_, class_, style)
        found = self.looks.get(key)
        if found is None:
            found = self._look_anew(tag, id_, class_.split(), style, None)
            if len(self.looks) < 4096:
                self.looks[key] = found
        return found

    def _look_anew(self, tag: str, id_: str, classes: list[str], style: str,
                   extra: list[int] | None) -> tuple[bool, int, int, float]:
        by_key = self.by_key
        indexes = [*by_key.get(tag, ()), *by_key.get("*", ())]
        if id_:
            indexes += by_key.get("#" + id_, ())
        for name in classes:
            indexes += by_key.get("." + name, ())
        # (specificity, order, normal, important): complex rules after simple ones of the same specificity
        matching = [(rule[3], i, rule[4], rule[5]) for i, rule in ((i, self.rules[i]) for i in sorted(set(indexes)))
                    if rule[0] in ("*", tag) and rule[1] in ("", id_) and all(c in classes for c in rule[2])]
        for i in extra or ():
            rule_c = self.complex[i]
            matching.append((rule_c[1], MAX_CSS_RULES + i, rule_c[2], rule_c[3]))
        if not matching:
            return _style_look(style) if style else (False, _UNSET, _UNSET, _NO_SIZE)
        matching.sort(key=lambda rule: (rule[0], rule[1]))
        decls: dict[str, str] = {}
        for rule in matching:
            decls.update(rule[2])
        if style:
            decls.update(_declarations(style))
        for rule in matching:
            decls.update(rule[3])
        return _look_of(decls)


MAX_COMPLEX_RULES = 64  # rules with selectors lexbor matches (each is a walk of the body)
MAX_COMPLEX_MATCHES = 10_000  # elements one such rule applies to
_SPECIFICITY_PARTS = re.compile(r"#[-\w]+|\.[-\w]+|\[[^\]]*\]|::?[-\w]+|(?<![-\w#.:])[a-z][-\w]*")


def _specificity(selector: str) -> int:
    """A selector's specificity as one number: ids, then classes, attributes and pseudo-classes, then tags."""
    ids = classes = tags = 0
    for part in _SPECIFICITY_PARTS.findall(selector):
        if part[0] == "#":
            ids += 1
        elif part[0] in ".[:":
            classes += 1
        else:
            tags += 1
    return 10_000 * ids + 100 * classes + tags


_SIMPLE_SELECTOR = re.compile(r"([a-z][a-z0-9]*|\*)?((?:[.#][-\w]+)*)\Z")
_SELECTOR_PART = re.compile(r"[.#][-\w]+")
# The properties _look_of reads (a rule with none of them changes nothing seen).
_RELEVANT = re.compile(r"display|visib|opacity|mso-hide|font-size|height|width|indent|overflow|margin|position|clip"
                       r"|transform|colou?r|background", re.I)
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)(?:</style\s*>|\Z)", re.I | re.S)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)|<!--|-->", re.S)
# A rule "selectors { declarations }", the start of a block of rules ("@media ... {"), or the "}" ending one.
_CSS_TOKEN = re.compile(r"([^{}]*)\{([^{}]*)\}|([^{}]*)\{|\}")
MAX_CSS_CHARS = 200_000  # of <style> blocks read (bounded work)
MAX_CSS_RULES = 5_000


def _style_sheet(html: str) -> _Sheet | None:
    """The rules of html's <style> blocks, or None where it has none."""
    if "<style" not in html and "<STYLE" not in html and not re.search("<style", html, re.I):
        return None
    css = "\n".join(block.group(1) for block in itertools.islice(_STYLE_BLOCK.finditer(html), 100))
    return _sheet_of(css[:MAX_CSS_CHARS])


@lru_cache(maxsize=16)  # mail from one sender's template comes with the same <style> blocks
def _sheet_of(css: str) -> _Sheet | None:
    """The rules of a style sheet (see _read_rules), or None where none of them matters here."""
    sheet = _Sheet()
    _read_rules(_CSS_COMMENT.sub(" ", css), sheet)
    return sheet if sheet.rules or sheet.complex else None


def _read_rules(css: str, sheet: _Sheet) -> None:
    """Add the rules of css to sheet: plain ones, and those of @media (a desktop screen) and @supports blocks."""
    skipping: list[bool] = []  # for each block of rules open: whether its rules are left out
    for token in _CSS_TOKEN.finditer(css):
        prelude, body, block = token.group(1), token.group(2), token.group(3)
        if block is not None:
            block = block.rsplit(";", 1)[-1].strip()  # after an "@import ...;" or a stray declaration
            applies = block.startswith("@supports") or (block.startswith("@media") and _desktop_media(block[6:]))
            skipping.append(bool(skipping and skipping[-1]) or not applies)
        elif prelude is None:
            if skipping:
                skipping.pop()
        elif not (skipping and skipping[-1]):
            prelude = prelude.rsplit(";", 1)[-1]
            if not prelude.lstrip().startswith("@"):  # @font-face, @page: no rules for elements
                sheet.add(prelude, body)


_MEDIA_FEATURE = re.compile(r"\(\s*([a-z-]+)\s*(?::\s*([^)]*))?\)")


def _desktop_media(query_list: str) -> bool:
    """Whether a desktop screen, in the light, matches an @media query list (features unknown here do not)."""
    for query in query_list.lower().split(","):
        words = _MEDIA_FEATURE.sub(" ", query).replace(" and ", " ").split()
        if "not" in words or any(word not in ("only", "screen", "all", "and") for word in words):
            continue
        if all(_desktop_feature(name, value or "") for name, value in _MEDIA_FEATURE.findall(query)):
            return True
    return False


def _desktop_feature(name: str, value: str) -> bool:
    px = _px(value)
    if name in ("min-width", "min-device-width"):
        return px is not None and px <= _DESKTOP_WIDTH
    if name in ("max-width", "max-device-width"):
        return px is not None and px >= _DESKTOP_WIDTH
    return (name, value.strip()) in (("prefers-color-scheme", "light"), ("orientation", "landscape"))


def _look(tag: str, attrs: dict[str, str | None], sheet: _Sheet | None,
          extra: list[int] | None = None) -> tuple[bool, int, int, float]:
    """(hidden, text colour, background, font size) of an element: its attributes, inline style and the sheet's rules.

    extra: the sheet's complex rules the element matches (see _Sheet.matched).
    """
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true":
        return True, _UNSET, _UNSET, _NO_SIZE
    style = attrs.get("style")
    if sheet is not None and (extra or "class" in attrs or "id" in attrs or tag in sheet.by_key
                              or "*" in sheet.by_key):
        hidden, colour, background, size = sheet.look(tag, attrs, extra)
    elif style:
        hidden, colour, background, size = _style_look(style)
    elif "bgcolor" not in attrs and "background" not in attrs and tag != "font" and tag != "body":
        return False, _UNSET, _UNSET, _NO_SIZE  # most elements of most mail
    else:
        hidden, colour, background, size = False, _UNSET, _UNSET, _NO_SIZE
    if hidden:
        return True, _UNSET, _UNSET, _NO_SIZE
    if colour == _UNSET and (value := attrs.get("color") if tag == "font" else attrs.get("text") if tag == "body"
                             else None):
        colour = _attribute_colour(value)
    if background == _UNSET:
        if attrs.get("background"):
            background = _PICTURE
        elif value := attrs.get("bgcolor"):
            background = _attribute_colour(value)
    return False, colour, background, size


@lru_cache(maxsize=1024)
def _unseen(colour: int, background: int) -> bool:
    """Whether text of colour on background cannot be read: transparent, or (nearly) the same colour."""
    if colour == _TRANSPARENT:
        return True
    if colour < 0 or background < 0:
        return False  # on a picture, or a colour not known: taken as seen
    light, dark = sorted((_luminance(colour), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05) < _MIN_CONTRAST


def _luminance(colour: int) -> float:
    """WCAG 2 relative luminance of 0xRRGGBB."""
    total = 0.0
    for shift, weight in ((16, 0.2126), (8, 0.7152), (0, 0.0722)):
        c = (colour >> shift & 0xFF) / 255
        total += weight * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return total


def _quoting(tag: str, attrs: dict[str, str | None]) -> bool:
    if tag == "blockquote":
        return True
    class_, id_ = attrs.get("class"), attrs.get("id")  # most elements have neither: no regex then
    return bool((class_ and _QUOTE_CLASS.search(class_)) or (id_ and _QUOTE_ID.search(id_)))


_NESTING_TAGS = ("div", "span", "table", "font", "blockquote", "center", "section", "b", "i", "u", "strong", "em", "a")
MAX_UNCLOSED = 2000


# What _too_deep counts: each "<" or "</" followed by one of _NESTING_TAGS as a whole name (so
# not "<br", "<body" or "<img", which nest nothing: a newsletter is full of them).
_OPENING = re.compile("<(?:" + "|".join(_NESTING_TAGS) + r")(?=[\s/>])")
_CLOSING = re.compile("</(?:" + "|".join(_NESTING_TAGS) + r")(?=[\s/>])")


def _too_deep(html: str) -> bool:
    """Whether html leaves thousands of elements open: lexbor's tree building is quadratic in depth."""
    if html.count("<") <= MAX_UNCLOSED:
        return False  # each "<" opens at most one element
    lower = html.lower()  # one pass per direction rather than a str.count per tag name (a long mail has many tags)
    return len(_OPENING.findall(lower)) - len(_CLOSING.findall(lower)) > MAX_UNCLOSED


# The lexbor documents that HTML bodies are parsed into, one per thread and mode (see _parse_html):
# .documents, {quirks: parser}, and .parsed, the characters parsed into them. (A plain
# threading.local: mypyc compiles no subclass of it.)
_DOCUMENTS = threading.local()
DOCUMENT_REUSE_CHARS = 1_000_000  # new documents after this much HTML (see _parse_html)
# The DOCTYPE that decides a document's mode: the first thing in it but spaces and comments.
_DOCTYPE = re.compile(r"(?:\s|<!--.*?-->)*(<!doctype[^>]*>)?", re.I | re.S)


def _parse_html(html: str) -> Any:
    """The body element of html parsed by lexbor (or its root element, where there is no body).

    A new lexbor document fills some hundreds of KB of fresh memory, which
    pushes mail-parser's and our own working data out of the processor's caches: a mail
    with HTML took twice as long through parse and extraction as one without. So each body
    is parsed as the content of a kept document's root <html> element: the HTML fragment
    algorithm in that context builds <head> and <body> as a document parse does, attributes
    included, except that the mode (quirks or not: whether a <table> closes an open <p>) is
    the kept document's, not the one the DOCTYPE asks for. So there is a kept document for
    each mode, and the DOCTYPE picks one (_quirks). The children replaced are unlinked, not
    freed, so the documents are replaced after DOCUMENT_REUSE_CHARS characters of HTML.
    (tests/test_extract_forms.py compares the trees with a document parse's.)
    """
    from selectolax.lexbor import LexborHTMLParser

    state = _DOCUMENTS
    if getattr(state, "documents", None) is None or state.parsed > DOCUMENT_REUSE_CHARS:
        state.documents, state.parsed = {}, 0
    state.parsed += len(html) + 1000
    quirks = _quirks(_DOCTYPE.match(html).group(1) or "")  # type: ignore[union-attr]  # it matches ""
    document = state.documents.get(quirks)
    if document is None:
        document = state.documents[quirks] = LexborHTMLParser("" if quirks else "<!DOCTYPE html>")
    root = document.root
    try:
        root.inner_html = html
    except UnicodeEncodeError:  # lone surrogates: left out, as lexbor's own input step does
        root.inner_html = html.encode("utf-8", "ignore").decode("utf-8")
    body = next((child for child in root.iter() if child.tag == "body"), None)
    if body is not None:
        return body
    # No body: a <frameset>, which the fragment algorithm lets in where a document parse would
    # not. Such (rare) mail is parsed as a document of its own.
    tree = LexborHTMLParser(html)
    return tree.body or tree.root


@lru_cache(maxsize=256)  # mail comes with a handful of DOCTYPEs
def _quirks(doctype: str) -> bool:
    """Whether lexbor parses a document that begins with doctype in quirks mode (no DOCTYPE: it does).

    Asked of lexbor itself, by where a <table> lands after an open <p>: in quirks mode it
    nests in the paragraph, else it closes it (HTML standard, "in body" insertion mode).
    """
    from selectolax.lexbor import LexborHTMLParser

    body = LexborHTMLParser(doctype + "<p><table></table>").body
    return body is not None and body.css_first("p > table") is not None


NESTED_TOO_DEEPLY = "[HTML left out: it nests elements too deeply to be rendered safely.]"


def html_to_text(html: str) -> Rendered:
    """Visible text of an HTML body in reading order; what a reader cannot see, style, script and images left out.

    Hidden is what an inline style or a <style> rule hides (see _hides), and text drawn in
    (nearly) the colour behind it; a link is kept only where some of it is seen (its text,
    or an image). HTML that leaves thousands of elements open (lexbor's tree building is
    quadratic in depth) is not rendered at all, only named by NESTED_TOO_DEEPLY: no cheaper
    reading of it could tell what is hidden, so none of its text, codes or links is used.
    """
    html = html[:MAX_HTML_CHARS]
    if _too_deep(html):
        return Rendered(NESTED_TOO_DEEPLY, "", [])
    root = _parse_html(html)
    sheet = _style_sheet(html)
    matches = sheet.matched(root) if sheet is not None and sheet.complex else {}
    main: list[str] = []
    quoted: list[str] = []
    anchors: list[tuple[str, str]] = []
    # One pass over lexbor's own traversal of the tree (document order, no recursion: hostile
    # mail nests thousands of elements deep). An element ends where the node that follows its
    # subtree begins: its next sibling, else where its parent ends. opened holds the elements
    # entered and not yet ended, innermost last: (the mem_id of the node after it, 0 for the
    # end of the body, which a None after the traversal stands for; what to do then: None, a
    # separator to write after a cell or block, or (tag, start, href, quoted, images) to close
    # an anchor or a quote). out is main, or quoted inside a quote. inks holds, the same way,
    # the text colour, background, font size and unseen flag to go back to where an element that
    # changed them ends; images counts the images seen, so that a link of an image alone is kept.
    opened: list[tuple[int, Any]] = []
    inks: list[tuple[int, int, int, float, bool]] = []
    colour, background, size, unseen, link_colour = _BLACK, _WHITE, _BODY_PX, False, _LINK_BLUE
    images = in_links = 0  # images seen; links open
    separator_after, block_tags, skip_tags = _SEPARATOR_AFTER, _BLOCK_TAGS, _SKIP_TAGS
    quote_depth = 0
    out = main
    skip_to = -1  # skipping a hidden or skipped element: the mem_id of the node after it (0: the end)
    for node in itertools.chain(root.traverse(include_text=True), (None,)):
        node_id = 0 if node is None else node.mem_id
        if skip_to >= 0:
            if node_id != skip_to:
                continue
            skip_to = -1
        while opened and opened[-1][0] == node_id:  # the elements that end here, innermost first
            then = opened.pop()[1]
            if then is None:
                continue
            if type(then) is str:
                out.append(then)
                continue
            tag, start, href, was_quote, images_before = then
            in_links -= tag == "a"
            if tag == "a" and not quote_depth:
                label = normalise("".join(out[start:]))
                if label or images > images_before:  # a link nobody can see is no link
                    anchors.append((href, label))
                    if link_kind(href, label)[0] in SHOWN_KINDS and href.startswith(("http://", "https://")):
                        out.append(f" <{href}>")
            if tag in separator_after:
                out.append(separator_after[tag])
            if was_quote:
                quote_depth -= 1
                out = quoted if quote_depth else main
        while inks and inks[-1][0] == node_id:
            _, colour, background, size, unseen = inks.pop()
        if node is None:
            break
        if node.is_text_node:
            if not unseen:
                out.append(node.text_content or "")
            continue
        if not opened:
            end = 0  # the body itself (the first node): it ends with the traversal
        elif (following := node.next) is not None:
            end = following.mem_id
        else:
            end = opened[-1][0]
        tag = node.tag
        attrs = node.attributes
        if not tag or tag in skip_tags or tag[0] == "-":
            # An image in a link that is seen (not hidden, not a tracking pixel) keeps the link.
            if tag == "img" and in_links and not _pixel(attrs) and not _look(tag, attrs, sheet,
                                                                              matches.get(node.mem_id))[0]:
                images += 1
                alt = attrs.get("alt")  # an image button: its alt text names the link
                if alt and node.parent is not None and node.parent.tag == "a":
                    out.append(f" {alt} ")
            skip_to = end
            continue
        # An element without attributes is neither hidden nor coloured nor a quote by class
        # (unless a tag rule of the sheet says otherwise); a link takes the link colour.
        extra = matches.get(node.mem_id) if matches else None
        if attrs or tag == "a" or extra or (sheet is not None and (tag in sheet.by_key or "*" in sheet.by_key)):
            hidden, new_colour, new_background, new_size = _look(tag, attrs, sheet, extra)
            if hidden:
                skip_to = end
                continue
            if tag == "body" and (value := attrs.get("link")):
                link_colour = _attribute_colour(value)
            if new_colour == _UNSET and tag == "a" and attrs.get("href"):
                new_colour = link_colour
            elif new_colour == _INHERIT:
                new_colour = _UNSET
            if new_background == _TRANSPARENT:
                new_background = _UNSET
            if ((new_colour != _UNSET and new_colour != colour) or (new_background != _UNSET
                                                                      and new_background != background)
                    or (new_size != _NO_SIZE and new_size != size)):
                inks.append((end, colour, background, size, unseen))
                colour = colour if new_colour == _UNSET else new_colour
                background = background if new_background == _UNSET else new_background
                size = size if new_size == _NO_SIZE else new_size
                unseen = size < _TINY or _unseen(colour, background)
        is_quote = tag == "blockquote" or (bool(attrs) and _quoting(tag, attrs))
        if is_quote:
            quote_depth += 1
            out = quoted
        if tag in block_tags:
            out.append("\n")
        if is_quote or tag == "a":
            href = (attrs.get("href") or "").strip() if tag == "a" else ""
            opened.append((end, (tag, len(out), href, is_quote, images)))
            in_links += tag == "a"
        else:  # a span, font, b... writes nothing when it ends
            opened.append((end, separator_after.get(tag)))
    return Rendered(normalise("".join(main)), normalise("".join(quoted)), anchors)



_PIXEL_SIZES = frozenset({"0", "1", "0px", "1px"})


def _pixel(attrs: dict[str, str | None]) -> bool:
    """Whether an image's width or height attribute makes it a pixel or less (a tracker, not a button)."""
    return (attrs.get("width") or "").strip() in _PIXEL_SIZES or (attrs.get("height") or "").strip() in _PIXEL_SIZES
