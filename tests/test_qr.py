"""Enrolment from a QR image: real images made here (segno draws the code, Pillow the page), read by zxing-cpp.

The codes are found in cropped images at every scale, turned, in low-quality JPEG, in WebP
and GIF, on a transparent background, and in a 1920x1080 screenshot of an enrolment page.
Google Authenticator exports are checked against another project's published test data and
against protobuf bytes written out by hand here, never against our own decoder. Every
refusal is checked for its words and for never quoting the seed or what the code holds; the
CLI is run as a real subprocess and its codes compared with oathtool's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import struct
import subprocess
import zlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from PIL import Image, ImageDraw

from mailgent_mcp.errors import InvalidInput, InvalidSecret
from mailgent_mcp.vault import otp
from mailgent_mcp.vault.qr import MAX_IMAGE_BYTES, image_from_base64, secret_from_image

from .conftest import SEED_RFC, run_cli
from .qr_images import PAGE_SIZE, encode, enrolment_page, qr_image

URI = f"otpauth://totp/Example:alice@example.com?secret={SEED_RFC}&issuer=Example"

# A seed that must never appear in any message: 40 bytes derived from a fixed phrase.
SENTINEL = base64.b32encode(hashlib.sha512(b"mailgent-mcp qr sentinel seed").digest()[:40]).decode()
SENTINEL_URI = f"otpauth://totp/Sentinel:bot@example.com?secret={SENTINEL}&issuer=Sentinel"

# Google Authenticator export of one TOTP account, with the URI it stands for, from the test
# data of dim13/otpauth (github.com/dim13/otpauth, migration/convert_test.go at commit
# 011749d18bd247a0f0fae32351e3cda758e0c863; ISC licence, (c) 2020 Dimitri Sokolyuk).
DIM13_EXPORT = "otpauth-migration://offline?data=CjEKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZTAC"
DIM13_SECRET, DIM13_ISSUER, DIM13_ACCOUNT = "JBSWY3DPEHPK3PXP", "Example", "alice@google.com"

# An export of two TOTP accounts (ACME Co, secret HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ, and Example,
# JBSWY3DPEHPK3PXP), `string4` in johncallahan/otpauth_migration's test/otpauth_migration_test_data.dart
# (commit 0b7d585beb8ac27c2d43508981844de968ca93b7; MIT licence, (c) 2022 John R. Callahan).
CALLAHAN_EXPORT = (
    "otpauth-migration://offline?data=CkMKFD3GyqSCSm0oh2eyMx4gtDFmy4XZEhxBQ01FIENvOmpvaG4uZG9lQGV4YW1wbGUuY29tGgdBQ"
    "01FIENvIAEoATACCjUKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZSABKAEwAhABGAAgACjn4Pv4Ag%3D%3D"
)
CALLAHAN_SECRETS = ("HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ", "JBSWY3DPEHPK3PXP")

RFC_SHA256_KEY = b"12345678901234567890123456789012"  # RFC 6238 Appendix B's SHA-256 seed


def account(secret: bytes, *, name: bytes = b"Acme:bob", algorithm: int = 2, digits: int = 2, kind: int = 2) -> bytes:
    """One OtpParameters message, written field by field (tag byte = field number << 3 | wire type).

    1 secret (0x0a, bytes), 2 name (0x12, string), 3 issuer (0x1a, string), 4 algorithm (0x20:
    1 SHA1, 2 SHA256, 3 SHA512, 4 MD5), 5 digits (0x28: 1 six, 2 eight), 6 type (0x30: 1 HOTP,
    2 TOTP), 7 counter (0x38). Every length here is under 128, so each fits in one byte.
    """
    fields = bytes([0x0A, len(secret)]) + secret + bytes([0x12, len(name)]) + name + b"\x1a\x04Acme"
    fields += bytes([0x20, algorithm, 0x28, digits, 0x30, kind])
    if kind == 1:
        fields += b"\x38\x00"  # HOTP counter 0
    return fields


def export(*accounts: bytes) -> str:
    """A MigrationPayload (1 otp_parameters, repeated; 2 version = 1) as an otpauth-migration URI."""
    payload = b"".join(bytes([0x0A, len(a)]) + a for a in accounts) + b"\x10\x01"
    return "otpauth-migration://offline?data=" + base64.b64encode(payload).decode().replace("+", "%2B")


def query(uri: str) -> dict[str, str]:
    """The URI's query parameters, one value each."""
    return {key: values[0] for key, values in parse_qs(urlsplit(uri).query).items()}


def png(picture: Image.Image) -> bytes:
    return encode(picture, "PNG")


def page_with(text: str, scale: int = 4) -> Image.Image:
    return enrolment_page(qr_image(text, scale))


# --- finding the code --------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8, 16, 40])
def test_reads_a_cropped_code_at_every_scale(scale: int) -> None:
    assert secret_from_image(png(qr_image(URI, scale))) == URI


@pytest.mark.parametrize("scale", [2, 3, 6])
def test_reads_the_code_in_a_screenshot_of_an_enrolment_page(scale: int) -> None:
    assert secret_from_image(png(page_with(URI, scale))) == URI


def test_reads_a_page_screenshot_turned_a_quarter() -> None:
    turned = page_with(URI).rotate(90, expand=True)
    assert turned.size == PAGE_SIZE[::-1]
    assert secret_from_image(png(turned)) == URI


@pytest.mark.parametrize("angle", [10, 15])
def test_reads_a_code_set_at_a_small_angle_on_the_page(angle: int) -> None:
    tilted = qr_image(URI, 4).rotate(angle, expand=True, fillcolor="white", resample=Image.Resampling.BICUBIC)
    assert secret_from_image(png(enrolment_page(tilted))) == URI


@pytest.mark.parametrize("scale, quality", [(2, 15), (4, 10)])
def test_reads_a_low_quality_jpeg_screenshot(scale: int, quality: int) -> None:
    assert secret_from_image(encode(page_with(URI, scale), "JPEG", quality=quality)) == URI


@pytest.mark.parametrize("options", [{"quality": 30}, {"lossless": True}], ids=["lossy", "lossless"])
def test_reads_a_webp_screenshot(options: dict[str, object]) -> None:
    data = encode(page_with(URI), "WEBP", **options)
    assert data[8:12] == b"WEBP"
    assert secret_from_image(data) == URI


def test_reads_a_gif_screenshot() -> None:
    data = encode(page_with(URI), "GIF")
    assert data[:4] == b"GIF8"
    assert secret_from_image(data) == URI


def test_reads_a_code_drawn_on_a_transparent_background() -> None:
    # Dark modules on clear pixels: dropping the alpha channel would turn the background black too.
    clear = qr_image(URI, 4, transparent=True)
    assert clear.getpixel((0, 0)) == (0, 0, 0, 0)
    assert secret_from_image(png(clear)) == URI


def test_the_same_code_found_twice_counts_once() -> None:
    code = qr_image(URI, 4)
    assert secret_from_image(png(enrolment_page(code, second=code))) == URI


def test_an_image_too_large_to_bother_reading_is_refused_without_decoding_it() -> None:
    with pytest.raises(InvalidInput, match="larger than 10 MB"):
        secret_from_image(b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (8-bit grey) and holds no pixels at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


@pytest.mark.parametrize("width, height", [(8000, 5001), (20000, 20000)], ids=["40M", "pillow-bomb-limit"])
def test_an_image_of_too_many_pixels_is_refused_before_its_pixels_are_decoded(width: int, height: int) -> None:
    with pytest.raises(InvalidInput, match="more than 40 million pixels; crop it"):
        secret_from_image(_png_header(width, height))


def test_a_real_image_of_too_many_pixels_is_refused() -> None:
    with pytest.raises(InvalidInput, match="more than 40 million pixels"):
        secret_from_image(png(Image.new("L", (8000, 5001), 255)))


# --- refusals ------------------------------------------------------------------------------


def test_an_image_without_a_code_is_refused_with_the_next_step() -> None:
    with pytest.raises(InvalidInput, match="No QR code was found in the image") as caught:
        secret_from_image(png(enrolment_page()))
    assert "setup key" in str(caught.value)


def test_two_different_codes_are_refused_with_their_count() -> None:
    page = enrolment_page(qr_image(URI, 4), second=qr_image(SENTINEL_URI, 3))
    with pytest.raises(InvalidInput, match="holds 2 different QR codes; crop it to the service's 2FA enrolment"):
        secret_from_image(png(page))


def test_a_code_holding_a_web_link_is_refused_without_quoting_it() -> None:
    link = "https://example.com/account/recover?token=ZX81-secret-token"
    with pytest.raises(InvalidSecret, match="holds a web link, not an otpauth:// URI") as caught:
        secret_from_image(png(page_with(link)))
    assert "example.com" not in str(caught.value) and "token" not in str(caught.value)


def test_a_code_holding_plain_text_is_refused() -> None:
    with pytest.raises(InvalidSecret, match="holds other text, not an otpauth:// URI"):
        secret_from_image(png(qr_image("WIFI is at the front desk", 4)))


def test_a_damaged_code_is_told_apart_from_no_code() -> None:
    code = qr_image(URI, 6)
    width, height = code.size
    ImageDraw.Draw(code).rectangle((width * 3 // 10, height * 3 // 10, width * 95 // 100, height * 7 // 10), fill="black")
    with pytest.raises(InvalidInput, match="A QR code was found in the image but could not be read"):
        secret_from_image(png(code))


def test_a_counter_based_enrolment_is_refused() -> None:
    hotp = f"otpauth://hotp/Acme:bob?secret={SEED_RFC}&counter=0"
    with pytest.raises(InvalidSecret, match="counter-based \\(HOTP\\) enrolment"):
        secret_from_image(png(qr_image(hotp, 4)))


def test_a_malformed_otpauth_uri_in_a_code_gets_the_parsers_error() -> None:
    bad = f"otpauth://totp/Acme:bob?secret={SEED_RFC}&digits=99"
    with pytest.raises(InvalidSecret, match="digits parameter must be a whole number from 6 to 10"):
        secret_from_image(png(qr_image(bad, 4)))


@pytest.mark.parametrize("data", [b"just some text, not a picture", b"", b"\x89PNG\r\n"], ids=["text", "empty", "png-signature"])
def test_data_that_is_no_image_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"not a PNG, JPEG, WebP or GIF image|image is empty"):
        secret_from_image(data)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM"])
def test_an_image_in_another_format_is_refused(fmt: str) -> None:
    data = encode(qr_image(URI, 4), fmt)
    with pytest.raises(InvalidInput, match="not a PNG, JPEG, WebP or GIF image"):
        secret_from_image(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_a_truncated_image_is_refused_as_unreadable(fmt: str) -> None:
    data = encode(page_with(URI), fmt)
    with pytest.raises(InvalidInput, match="could not be read: the file is damaged or cut short"):
        secret_from_image(data[: len(data) // 2])


# --- Google Authenticator exports ----------------------------------------------------------


def test_a_one_account_export_from_another_projects_tests_becomes_its_uri() -> None:
    uri = secret_from_image(png(qr_image(DIM13_EXPORT, 4)))
    assert uri.startswith("otpauth://totp/")
    assert query(uri) == {"secret": DIM13_SECRET, "issuer": DIM13_ISSUER, "algorithm": "SHA1", "digits": "6",
                          "period": "30"}
    assert unquote(urlsplit(uri).path) == f"/{DIM13_ISSUER}:{DIM13_ACCOUNT}"


def test_a_hand_written_sha256_export_gives_the_rfc_code() -> None:
    uri = secret_from_image(png(qr_image(export(account(RFC_SHA256_KEY, algorithm=2, digits=2)), 4)))
    params = query(uri)
    assert params["secret"] == base64.b32encode(RFC_SHA256_KEY).decode().rstrip("=")
    assert (params["algorithm"], params["digits"], params["issuer"]) == ("SHA256", "8", "Acme")
    assert otp.totp_at(otp.parse_uri(uri), 59).code == "46119246"  # RFC 6238 Appendix B, SHA-256, T = 59 s


def test_an_export_of_several_accounts_is_refused_with_their_count() -> None:
    with pytest.raises(InvalidSecret, match="Google Authenticator export of 2 accounts; export one account at a time"):
        secret_from_image(png(qr_image(CALLAHAN_EXPORT, 3)))


def test_an_export_of_a_counter_based_account_is_refused() -> None:
    with pytest.raises(InvalidSecret, match="counter-based \\(HOTP\\) enrolment"):
        secret_from_image(png(qr_image(export(account(b"12345678901234567890", kind=1)), 4)))


def test_an_export_of_an_md5_account_is_refused() -> None:
    with pytest.raises(InvalidSecret, match="uses MD5, which is not supported"):
        secret_from_image(png(qr_image(export(account(b"12345678901234567890", algorithm=4)), 4)))


# --- no message carries the seed or the payload ---------------------------------------------


def _damaged(text: str) -> bytes:
    code = qr_image(text, 6)
    width, height = code.size
    ImageDraw.Draw(code).rectangle((width * 3 // 10, height * 3 // 10, width * 95 // 100, height * 7 // 10), fill="black")
    return png(code)


SENTINEL_KEY = base64.b32decode(SENTINEL)
LEAKY_IMAGES = {
    "two-codes": lambda: png(enrolment_page(qr_image(SENTINEL_URI, 4),
                                            second=qr_image(SENTINEL_URI.replace("bot@", "other@"), 3))),
    "web-link": lambda: png(qr_image(f"https://example.com/enrol?secret={SENTINEL}", 4)),
    "plain-text": lambda: png(qr_image(SENTINEL, 4)),
    "hotp": lambda: png(qr_image(SENTINEL_URI.replace("totp", "hotp") + "&counter=1", 4)),
    "bad-digits": lambda: png(qr_image(SENTINEL_URI + "&digits=99", 4)),
    "bad-base32": lambda: png(qr_image(SENTINEL_URI.replace("secret=", "secret=0189"), 4)),
    "export-of-two": lambda: png(qr_image(export(account(SENTINEL_KEY), account(SENTINEL_KEY, name=b"Acme:eve")), 3)),
    "export-hotp": lambda: png(qr_image(export(account(SENTINEL_KEY, kind=1)), 4)),
    "export-md5": lambda: png(qr_image(export(account(SENTINEL_KEY, algorithm=4)), 4)),
    "damaged": lambda: _damaged(SENTINEL_URI),
}


@pytest.mark.parametrize("make", LEAKY_IMAGES.values(), ids=LEAKY_IMAGES.keys())
def test_no_refusal_quotes_the_seed_or_the_code_text(make: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert callable(make)
    with pytest.raises(InvalidInput) as caught:
        secret_from_image(make())
    message = str(caught.value)
    for secret in (SENTINEL, SENTINEL.lower(), SENTINEL[:16], SENTINEL_KEY.hex(), "example.com", "Sentinel"):
        assert secret not in message
        assert secret not in caplog.text
    # Nothing chained either: a library's error text (which may echo its input) would follow in a traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


# --- base64 and data: URLs -----------------------------------------------------------------


IMAGE = png(qr_image(URI, 2))


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(IMAGE).decode(),
        base64.encodebytes(IMAGE).decode(),  # wrapped at 76 characters, as mail and PEM do
        "  " + base64.b64encode(IMAGE).decode().rstrip("=") + "\n",  # no padding, spaced
        base64.urlsafe_b64encode(IMAGE).decode(),
        "data:image/png;base64," + base64.b64encode(IMAGE).decode(),
        "DATA:image/PNG;name=qr.png;BASE64,\n" + base64.encodebytes(IMAGE).decode(),
    ],
    ids=["plain", "wrapped", "unpadded", "urlsafe", "data-url", "data-url-params"],
)
def test_base64_and_data_urls_give_the_image_bytes(text: str) -> None:
    assert image_from_base64(text) == IMAGE
    assert secret_from_image(image_from_base64(text)) == URI


@pytest.mark.parametrize(
    "text, says",
    [
        ("this is not base64!", "not base64 text"),
        ("QUJD$RA==", "not base64 text"),
        ("QUJDR", "not base64 text"),  # a length no base64 text has
        ("", "image is empty"),
        ("data:image/png;base64,", "image is empty"),
        ("data:text/plain;base64,SGVsbG8=", "does not hold an image"),
        ("data:image/png,rawbytes", "not base64-encoded"),
        ("data:image/png;base64" + "A" * 400, "has no ','"),
    ],
)
def test_text_that_is_not_a_base64_image_is_refused(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        image_from_base64(text)


@pytest.mark.parametrize("size", [MAX_IMAGE_BYTES * 4 // 3 + 8, MAX_IMAGE_BYTES * 2])
def test_oversized_base64_is_refused_naming_the_limit(size: int) -> None:
    with pytest.raises(InvalidInput, match="larger than 10 MB"):
        image_from_base64("A" * size)


def test_base64_just_under_the_limit_is_decoded() -> None:
    assert len(image_from_base64(base64.b64encode(bytes(MAX_IMAGE_BYTES)).decode())) == MAX_IMAGE_BYTES


def test_base64_of_a_non_image_reaches_the_image_check() -> None:
    with pytest.raises(InvalidInput, match="not a PNG, JPEG, WebP or GIF image"):
        secret_from_image(image_from_base64(base64.b64encode(b"%PDF-1.7 not an image").decode()))


# --- the CLI -----------------------------------------------------------------------------


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args)


def test_cli_put_qr_stores_the_seed_and_totp_gives_oathtools_code(home: Path, tmp_path: Path, oathtool: str) -> None:
    screenshot = tmp_path / "enrol.jpg"
    screenshot.write_bytes(encode(page_with(URI, 3), "JPEG", quality=40))
    put = _run(home, "vault", "put", "example", "--qr", str(screenshot), "--username", "alice@example.com")
    assert put.returncode == 0, put.stderr
    assert "Stored 'example' (TOTP; fields: secret, username)" in put.stdout
    assert "issuer Example, account alice@example.com" in put.stdout
    shown = _run(home, "vault", "get", "example", "--reveal").stdout
    assert "username: alice@example.com" in shown
    code = json.loads(_run(home, "vault", "totp", "example", "--json").stdout)
    start = int(datetime.fromisoformat(code["expires_at"].replace("Z", "+00:00")).timestamp()) - code["period"]
    expected = subprocess.run([oathtool, "--totp=sha1", "-d", "6", "-s", "30s", f"--now=@{start}", "-b", SEED_RFC],
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    assert code["code"] == expected
    for output in (put.stdout, put.stderr, shown):
        assert SEED_RFC not in output and SEED_RFC.lower() not in output


def test_cli_put_qr_takes_a_one_account_export(home: Path, tmp_path: Path) -> None:
    (tmp_path / "export.png").write_bytes(png(qr_image(DIM13_EXPORT, 4)))
    put = _run(home, "vault", "put", "google", "--qr", str(tmp_path / "export.png"), "--json")
    assert put.returncode == 0, put.stderr
    info = json.loads(put.stdout)
    assert (info["totp"]["issuer"], info["totp"]["account"], info["totp"]["seed_bits"]) == ("Example", "alice@google.com", 80)
    assert DIM13_SECRET not in put.stdout


@pytest.mark.parametrize(
    "make, args, says",
    [
        (None, ("--qr", "{dir}/missing.png"), "missing.png': no such file"),
        (None, ("--qr", "{dir}"), "is a folder"),
        (lambda: b"a text file, not a picture", ("--qr", "{file}"), "not a PNG, JPEG, WebP or GIF image"),
        (lambda: png(enrolment_page()), ("--qr", "{file}"), "No QR code was found"),
        (lambda: png(qr_image(f"https://example.com/?t={SENTINEL}", 4)), ("--qr", "{file}"), "holds a web link"),
        (lambda: png(qr_image(SENTINEL_URI, 4)), ("--qr", "{file}", "--secret"), "--secret or --qr FILE, not both"),
        (lambda: png(qr_image(SENTINEL_URI, 4)), ("--qr", "{file}", "--issuer", "Other"), "issuer argument disagrees"),
    ],
    ids=["missing", "folder", "not-an-image", "no-code", "web-link", "with-secret", "contradicting-issuer"],
)
def test_cli_put_qr_refuses_with_exit_2_and_stores_nothing(home: Path, tmp_path: Path, make: object,
                                                           args: tuple[str, ...], says: str) -> None:
    file = tmp_path / "image.png"
    if callable(make):
        file.write_bytes(make())
    argv = [a.format(dir=tmp_path, file=file) for a in args]
    result = _run(home, "vault", "put", "svc", *argv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert says in result.stderr
    assert SENTINEL not in result.stdout + result.stderr and "example.com" not in result.stderr
    assert "Traceback" not in result.stderr
    assert "No entries" in _run(home, "vault", "list").stdout


def test_cli_put_qr_refuses_a_file_over_the_limit_reading_only_that_much(home: Path, tmp_path: Path) -> None:
    big = tmp_path / "huge.png"
    with big.open("wb") as file:
        file.truncate(MAX_IMAGE_BYTES * 3)  # sparse: no disk used
    result = _run(home, "vault", "put", "svc", "--qr", str(big))
    assert result.returncode == 2 and "is larger than 10 MB" in result.stderr


async def test_vault_put_reads_a_screenshot_given_as_qr_image(home: Path, oathtool: str) -> None:
    """The tool path, as an agent calls it: a base64 screenshot of the set-up page, then a code."""
    from mcp import Client

    from mailgent_mcp.mcp.server import build_server
    from mailgent_mcp.mcp.vault_tools import VaultProvider
    from mailgent_mcp.settings import Settings

    from .conftest import error_text, ok

    page = base64.b64encode(encode(enrolment_page(qr_image(URI, 4)), "PNG")).decode()
    blank = base64.b64encode(encode(enrolment_page(None), "PNG")).decode()
    leaky = base64.b64encode(encode(enrolment_page(qr_image(SENTINEL_URI, 4)), "PNG")).decode()
    provider = VaultProvider(home, {})
    try:
        async with Client(build_server(Settings(home=home), provider)) as c:
            stored = await c.call_tool("vault_put", {"name": "example", "qr_image": page})
            code = ok(await c.call_tool("vault_totp", {"name": "example", "unused_only": False}))
            none = error_text(await c.call_tool("vault_put", {"name": "other", "qr_image": blank}))
            both = error_text(await c.call_tool("vault_put", {"name": "x", "qr_image": leaky,
                                                              "data": {"secret": SENTINEL}}))
    finally:
        await provider.close()
    info = ok(stored)
    assert info["has_totp"] and info["totp"]["issuer"] == "Example"  # type: ignore[index]
    assert SEED_RFC not in str(stored.content) + str(stored.structured_content)
    end = datetime.strptime(str(code["expires_at"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    expected = subprocess.run([oathtool, "--totp", "-b", SEED_RFC, "--now", f"@{int(end) - 1}"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert code["code"] == expected
    assert "No QR code was found" in none
    assert "one way: data.secret or qr_image" in both and SENTINEL not in both
