"""Enrolment from a QR image: find the one QR code in a picture and read the TOTP seed in it.

Many services show 2FA enrolment only as a QR code. :func:`secret_from_image` takes the
image's bytes (a PNG, JPEG, WebP or GIF: a cropped code or a screenshot of the whole
page), finds the QR code with zxing-cpp and returns the ``otpauth://`` URI it holds. A
Google Authenticator export (``otpauth-migration://``) of one account becomes the
equivalent ``otpauth://totp/...`` URI. Whatever is returned has been read by the otpauth
parser (:mod:`mailgent_mcp.vault.otp`), so a malformed URI gets its usual safe error.
:func:`image_from_base64` turns base64 text or a ``data:image/...;base64,`` URL into the
bytes. Pillow and zxing-cpp are used here and nowhere else.

Nothing is kept: the image is read in memory for one call, never written to disk, and no
message, exception or log line carries the image or any text the QR code holds (a seed,
or a link that may carry a token): errors are fixed text plus counts and limits.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from urllib.parse import quote

import zxingcpp
from PIL import Image, UnidentifiedImageError

from mailgent_mcp.errors import InvalidInput, InvalidSecret
from mailgent_mcp.vault import otp

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # well above a full-page screenshot, even at 4K
MAX_IMAGE_PIXELS = 40_000_000  # 8K by 5K, more than any screen: bounds the decoding and the search
_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_QR_CODES = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # no other symbology: faster, no false reads
_MAX_BASE64 = -(-MAX_IMAGE_BYTES // 3) * 4  # base64 of MAX_IMAGE_BYTES, padded
_MAX_TEXT = _MAX_BASE64 + _MAX_BASE64 // 32 + 1024  # room for line breaks and a data: header
_MAX_HEADER = 256  # "data:image/png;base64," and its optional parameters
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE = re.compile(r"\s+")
_WHITE = (255, 255, 255, 255)

_LIMIT_MB = MAX_IMAGE_BYTES // (1024 * 1024)
_TOO_LARGE = (
    f"The image is larger than {_LIMIT_MB} MB; crop it to the part of the page with the QR code, or save it "
    "as PNG or JPEG."
)
_TOO_MANY_PIXELS = (
    f"The image has more than {MAX_IMAGE_PIXELS // 1_000_000} million pixels; crop it to the part of the page "
    "with the QR code."
)
_NOT_AN_IMAGE = (
    "The data is not a PNG, JPEG, WebP or GIF image; give a screenshot of the enrolment page or of its QR code "
    "in one of those formats."
)
_UNREADABLE = (
    "The image could not be read: the file is damaged or cut short; save the screenshot again and give the "
    "whole file."
)
_NO_QR = (
    "No QR code was found in the image; give a screenshot in which the service's 2FA QR code is whole and "
    "sharp, or type in the setup key the page shows (often behind \"can't scan the QR code?\")."
)
_QR_UNREADABLE = (
    "A QR code was found in the image but could not be read (blurred, damaged or partly hidden); take a "
    "sharper screenshot of the whole code, or type in the setup key the page shows."
)
_NOT_ENROLMENT = (
    "The QR code in the image is not a 2FA enrolment: it holds {what}, not an otpauth:// URI; give the QR code "
    "that the service's two-factor (authenticator app) setup shows."
)
_HOTP = (
    "The QR code holds a counter-based (HOTP) enrolment; the vault stores time-based (TOTP) seeds only. Ask "
    "the service for an authenticator-app (TOTP) setup instead."
)


# --- base64 text to bytes ---------------------------------------------------------------


def image_from_base64(text: str) -> bytes:
    """The image bytes from base64 text or a ``data:image/...;base64,`` URL; whitespace is ignored."""
    if not isinstance(text, str):
        raise InvalidInput("The image must be text: the image file's bytes in base64, or a data:image/...;base64, URL.")
    if len(text) > _MAX_TEXT:  # checked before anything is copied or decoded
        raise InvalidInput(_TOO_LARGE)
    body = _strip_data_url(text.strip())
    compact = _WHITESPACE.sub("", body).replace("-", "+").replace("_", "/")  # the url-safe alphabet too
    if not compact:
        raise InvalidInput("The image is empty; give the image file's bytes in base64.")
    if len(compact) > _MAX_BASE64:
        raise InvalidInput(_TOO_LARGE)
    if not _BASE64_TEXT.fullmatch(compact) or len(compact.rstrip("=")) % 4 == 1:
        raise InvalidInput(
            "The image is not base64 text; give the image file's bytes in base64 (A-Z, a-z, 0-9, + and /), "
            "or a data:image/png;base64, URL."
        )
    return _b64decode(compact.rstrip("="))


def _strip_data_url(text: str) -> str:
    """The base64 part of a ``data:`` URL (RFC 2397), or the text itself when it is not one."""
    if text[:5].lower() != "data:":
        return text
    header, comma, _ = text[: _MAX_HEADER + 1].partition(",")
    if not comma:
        raise InvalidInput("The data: URL has no ',' before its data; give it as data:image/png;base64,<data>.")
    media, *parameters = header[5:].split(";")
    if not media.strip().lower().startswith("image/"):
        raise InvalidInput("The data: URL does not hold an image; give it as data:image/png;base64,<data>.")
    if not parameters or parameters[-1].strip().lower() != "base64":
        raise InvalidInput("The data: URL is not base64-encoded; give it as data:image/png;base64,<data>.")
    return text[len(header) + 1 :]


def _b64decode(compact: str) -> bytes:
    """base64.b64decode of checked text, padding restored; the library's error is dropped."""
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        pass
    raise InvalidInput("The image is not base64 text; give the image file's bytes in base64.") from None


# --- the image to its QR code -------------------------------------------------------------


def secret_from_image(image: bytes) -> str:
    """The otpauth:// URI in the one QR code of a PNG, JPEG, WebP or GIF image."""
    return _otpauth_from_text(_qr_payload(_grey_image(image)))


def _grey_image(image: bytes) -> Image.Image:
    """Decode the image to 8-bit grey, transparency laid on white; size and format checked first."""
    if not isinstance(image, (bytes, bytearray, memoryview)):
        raise InvalidInput("The image must be the image file's bytes.")
    if len(image) > MAX_IMAGE_BYTES:
        raise InvalidInput(_TOO_LARGE)
    if not len(image):
        raise InvalidInput("The image is empty; give the whole image file.")
    try:
        picture = Image.open(io.BytesIO(image), formats=_FORMATS)  # reads the header only
    except UnidentifiedImageError:
        raise InvalidInput(_NOT_AN_IMAGE) from None
    except Image.DecompressionBombError:  # Pillow's own guard, at twice its pixel limit
        raise InvalidInput(_TOO_MANY_PIXELS) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InvalidInput(_UNREADABLE) from None
    with picture:
        width, height = picture.size
        if width * height > MAX_IMAGE_PIXELS:
            raise InvalidInput(_TOO_MANY_PIXELS)
        try:
            return _to_grey(picture)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            pass
    raise InvalidInput(_UNREADABLE) from None


def _to_grey(picture: Image.Image) -> Image.Image:
    """8-bit grey pixels of the first frame; transparent pixels become white, as a page shows them."""
    if picture.format == "JPEG":
        picture.draft("L", picture.size)  # libjpeg decodes straight to grey, at full size: a little faster
    picture.load()  # Pillow's decompression-bomb check and truncation errors surface here
    transparent = picture.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in picture.info
    if not transparent:
        return picture.convert("L")
    # A QR code drawn in black on a transparent background would vanish if alpha were dropped.
    page = Image.new("RGBA", picture.size, _WHITE)
    page.alpha_composite(picture.convert("RGBA"))
    return page.convert("L")


def _qr_payload(grey: Image.Image) -> str:
    """The text of the one QR code in the image; the same code found twice counts once."""
    found = zxingcpp.read_barcodes(grey, formats=_QR_CODES, return_errors=True)
    readable = {code.bytes: code.text for code in found if code.valid}
    if len(readable) > 1:
        raise InvalidInput(
            f"The image holds {len(readable)} different QR codes; crop it to the service's 2FA enrolment QR "
            "code alone."
        )
    if not readable:
        raise InvalidInput(_QR_UNREADABLE if found else _NO_QR)
    (text,) = readable.values()
    return text


# --- the QR code's text to an otpauth URI ----------------------------------------------


def _otpauth_from_text(text: str) -> str:
    """The otpauth://totp URI for a QR code's text: an otpauth URI, or a one-account migration export."""
    head = text.strip()[:20].lower()
    if head.startswith("otpauth-migration:"):
        return _migration_uri(text)
    if not head.startswith("otpauth:"):
        raise InvalidSecret(_NOT_ENROLMENT.format(what=_describe(head)))
    if otp.parse_uri(text).params.kind != "totp":  # the parser's own safe errors for a malformed URI
        raise InvalidSecret(_HOTP)
    return text.strip()


def _describe(head: str) -> str:
    """What a QR code that is no enrolment holds, in words that quote none of it."""
    if head.startswith(("http://", "https://")):
        return "a web link"
    if head.startswith(("mailto:", "tel:", "sms:", "smsto:", "wifi:", "begin:vcard", "geo:")):
        return "contact or connection details"
    return "other text"


def _migration_uri(text: str) -> str:
    """The otpauth://totp URI of the single TOTP account in a Google Authenticator export."""
    seeds = otp.parse_migration(text)
    if len(seeds) != 1:
        raise InvalidSecret(
            f"The QR code is a Google Authenticator export of {len(seeds)} accounts; export one account at a "
            "time (Transfer accounts, then select only this service) and give that QR code."
        )
    (seed,) = seeds
    if seed.params.kind != "totp":
        raise InvalidSecret(_HOTP)
    uri = _totp_uri(seed)
    otp.parse_uri(uri)  # the URI handed on is one the otpauth parser reads
    return uri


def _totp_uri(seed: otp.OtpSeed) -> str:
    """A Key-Uri-Format otpauth://totp URI for a seed: base32 secret, label, issuer, algorithm, digits."""
    params = seed.params
    secret = base64.b32encode(seed.seed).decode("ascii").rstrip("=")
    label = quote(params.account or "", safe="@")
    query = f"secret={secret}"
    if params.issuer:
        label = f"{quote(params.issuer, safe='')}:{label}"
        query += f"&issuer={quote(params.issuer, safe='')}"
    query += f"&algorithm={params.algorithm}&digits={params.digits}&period={params.period}"
    return f"otpauth://totp/{label}?{query}"
