"""Images for the QR enrolment tests and benchmark: codes made with segno, pages drawn with Pillow.

Every image is made in memory from the text it must hold, so a test knows exactly what a
correct reading returns. `enrolment_page` draws what a screenshot of a service's 2FA
settings looks like: a navigation bar, a side menu, headings, paragraphs, form boxes,
buttons and a round logo, with the QR code in a card among them.
"""

from __future__ import annotations

import io
from typing import Any

import segno
from PIL import Image, ImageDraw, ImageFont, ImageOps

PAGE_SIZE = (1920, 1080)
WORDS = ["Two-factor", "authentication", "adds", "a", "second", "step", "to", "your", "sign-in.", "Scan", "the", "code", "below", "with", "an", "authenticator", "app,", "then", "enter", "the", "six-digit", "code", "it", "shows", "to", "finish", "the", "setup.", "Keep", "your", "recovery", "codes", "somewhere", "safe:", "they", "are", "the", "only", "way", "back", "in", "if", "you", "lose", "your", "phone."]


def qr_image(text: str, scale: int = 4, *, border: int = 4, transparent: bool = False) -> Image.Image:
    """A QR code holding ``text``, ``scale`` pixels a module, as segno writes it (RGB).

    transparent: RGBA, dark modules opaque black and every other pixel (0, 0, 0, 0), as a
    canvas exports a code drawn on nothing: without its alpha channel it is all black.
    """
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=border)
    picture = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    if not transparent:
        return picture.convert("RGB")
    clear = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    clear.putalpha(ImageOps.invert(picture))
    return clear


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels: no system font needed."""
    return ImageFont.load_default(size=size)


def _paragraph(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, lines: int, size: int = 18) -> int:
    """Wrapped filler text from (x, y); returns the y below it."""
    face = font(size)
    words = list(WORDS * 20)
    for _ in range(lines):
        line = words.pop(0)
        while draw.textlength(f"{line} {words[0]}", font=face) <= width:
            line = f"{line} {words.pop(0)}"
        draw.text((x, y), line, fill=(55, 60, 68), font=face)
        y += size + 10
    return y


def enrolment_page(qr: Image.Image | None = None, *, second: Image.Image | None = None) -> Image.Image:
    """A 1920x1080 screenshot of a 2FA settings page, with ``qr`` in its card (and ``second`` beside it)."""
    page = Image.new("RGB", PAGE_SIZE, (246, 247, 249))
    draw = ImageDraw.Draw(page)
    # Navigation bar with a round logo and menu words.
    draw.rectangle((0, 0, PAGE_SIZE[0], 64), fill=(36, 41, 47))
    draw.ellipse((20, 12, 60, 52), fill=(240, 246, 252))
    draw.polygon([(40, 18), (54, 44), (26, 44)], fill=(36, 41, 47))
    for i, word in enumerate(("Overview", "Repositories", "Projects", "Settings")):
        draw.text((90 + i * 150, 20), word, fill=(240, 246, 252), font=font(20))
    draw.rounded_rectangle((1500, 16, 1820, 48), radius=6, outline=(120, 130, 140), fill=(13, 17, 23))
    draw.text((1512, 22), "Search or jump to...", fill=(140, 150, 160), font=font(16))
    # Side menu.
    for i, word in enumerate(("Public profile", "Account", "Appearance", "Notifications", "Billing",
                              "Emails", "Password and authentication", "SSH and GPG keys", "Applications")):
        if i == 6:
            draw.rectangle((40, 110 + i * 44, 400, 146 + i * 44), fill=(228, 232, 238))
        draw.text((56, 118 + i * 44), word, fill=(36, 41, 47), font=font(18))
    # Main column: heading, text, the card with the code, a form, buttons.
    draw.text((460, 100), "Enable two-factor authentication (2FA)", fill=(20, 20, 20), font=font(34))
    draw.line((460, 150, 1860, 150), fill=(210, 215, 220), width=2)
    y = _paragraph(draw, 460, 170, 1380, 3)
    draw.rounded_rectangle((460, y + 20, 1860, y + 520), radius=10, outline=(210, 215, 220), fill="white")
    draw.text((490, y + 40), "Scan the QR code", fill=(20, 20, 20), font=font(24))
    _paragraph(draw, 1000, y + 90, 820, 8)
    if qr is not None:
        page.paste(qr, (520, y + 90), qr if qr.mode == "RGBA" else None)
    if second is not None:
        page.paste(second, (1500, y + 300))
    draw.text((1000, y + 380), "Verify the code from the app", fill=(20, 20, 20), font=font(20))
    draw.rounded_rectangle((1000, y + 420, 1300, y + 460), radius=6, outline=(180, 185, 190), fill="white")
    draw.text((1012, y + 430), "XXXXXX", fill=(160, 165, 170), font=font(18))
    draw.rounded_rectangle((1320, y + 420, 1460, y + 460), radius=6, fill=(31, 136, 61))
    draw.text((1345, y + 430), "Continue", fill="white", font=font(18))
    _paragraph(draw, 460, y + 560, 1380, 4, size=16)
    return page


def encode(picture: Image.Image, fmt: str, **options: Any) -> bytes:
    """The image file's bytes in ``fmt`` (PNG, JPEG, WEBP, GIF, BMP...)."""
    buf = io.BytesIO()
    if fmt == "JPEG" and picture.mode == "RGBA":
        picture = picture.convert("RGB")
    picture.save(buf, fmt, **options)
    return buf.getvalue()
