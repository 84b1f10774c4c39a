"""Sender trust: Authentication-Results from a trusted receiving server, or DKIM verified here, and DMARC alignment."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mailgent_mcp.inbox.extract.result import SenderAuth


@lru_cache(maxsize=1)
def _psl() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()  # the list bundled with the package: nothing is fetched


@lru_cache(maxsize=4096)  # the same few sender domains come again and again; a lookup goes through IDNA
def organisational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the registrable domain (one label below its public suffix)."""
    domain = domain.lower().strip(".")
    return str(_psl().privatesuffix(domain) or domain)


def _domain_of(value: str | None) -> str | None:
    if not value:
        return None
    return value.rsplit("@", 1)[-1].strip().strip("<>").lower() or None


_COMMENT = re.compile(r"\([^()]*\)")
# A ";" (the end of a resinfo) or a name=value pair; a quoted value holds no ";" (see _results).
_RESINFO = re.compile(r";|([A-Za-z][\w.-]*)(?:/\d+)?\s*=\s*(\"(?:[^\"\\\\;]|\\\\[^;])*\"|[^\s;]+)")


def _results(header: str) -> tuple[str | None, dict[str, list[tuple[str, dict[str, str]]]]]:
    """authserv-id and {method: [(result, {ptype.property: value})]} of one header value (RFC 8601 §2.2).

    A small tokenizer of our own: authres, tried first, took longer for one header than
    mail-parser's whole parse of a typical verification mail.
    """
    text = " ".join(header.split())[:8000]
    if '"' in text:
        text = re.sub(r'"[^"]*"', lambda m: m.group().replace(";", ","), text)  # reason="a; b" is one value
    for _ in range(5 if "(" in text else 0):  # comments nest; each pass removes the innermost ones
        text, found = _COMMENT.subn(" ", text)
        if not found or "(" not in text:
            break
    end = text.find(";")
    head = (text if end < 0 else text[:end]).split()
    if not head or "=" in head[0]:
        return None, {}
    methods: dict[str, list[tuple[str, dict[str, str]]]] = {}
    props: dict[str, str] | None = None  # the properties of the resinfo being read, None to skip its pairs
    starting = True  # at the first pair of a resinfo: the method and its result
    for name, value in _RESINFO.findall(text, end + 1 if end >= 0 else len(text)):
        if not name:  # a ";"
            starting = True
        elif starting:
            starting = False
            props = None if "." in name else {}
            if props is not None:
                methods.setdefault(name.lower(), []).append((value.strip('"').lower(), props))
        elif props is not None and "." in name:
            props[name.lower()] = value.strip('"')
    return head[0].lower(), methods


# The results a verdict is shown as (RFC 8601 §2.7, with SPF's and providers' own); any other
# token is "other", so that no header text of the sender's reaches an answer through it.
_RESULTS = frozenset({"pass", "fail", "none", "neutral", "policy", "temperror", "permerror", "softfail", "hardfail",
                      "unknown", "bestguesspass", "skipped"})


def _verdict(results: list[tuple[str, dict[str, str]]]) -> str:
    for result, _ in results:
        if result == "pass":
            return "pass"
    if not results:
        return "none"
    return results[0][0] if results[0][0] in _RESULTS else "other"


def _aligned_pass(results: list[tuple[str, dict[str, str]]], keys: tuple[str, str], org: str) -> bool:
    """Whether one of results passed for a domain whose organisational domain is org."""
    for result, props in results:
        if result != "pass":
            continue
        domain = next((_domain_of(props[k]) for k in keys if props.get(k)), None)
        if domain and organisational_domain(domain) == org:
            return True
    return False


MAX_AUTH_HEADERS = 50  # Authentication-Results headers looked at in one message (hostile mail has thousands)


def authserv_id_of(header: str) -> str | None:
    """The authserv-id of one Authentication-Results header value (None when it names none)."""
    return _results(header)[0]


def authserv_trusted(authserv_id: str | None, trusted: Sequence[str]) -> bool:
    """Whether authserv_id is one of trusted: a name as given, or "*.example.net" for any name under it."""
    if not authserv_id:
        return False
    for pattern in trusted:
        if pattern.startswith("*."):
            if authserv_id.endswith(pattern[1:]) and len(authserv_id) >= len(pattern):
                return True
        elif authserv_id == pattern:
            return True
    return False


def receiver_stamp(auth_results: Sequence[str],
                   trusted: Sequence[str]) -> tuple[str | None, dict[str, list[tuple[str, dict[str, str]]]]]:
    """The authserv-id and results of the account's receiving server, from its trusted headers (RFC 8601 §5).

    The receiver adds its headers above everything the message arrived with, so reading starts
    at the topmost header of a trusted authserv-id; any header above it is another server's.
    Some receivers split one delivery's results over several headers (Fastmail writes
    x-me-sender, bimi and arc headers above its dkim, spf and dmarc one; iCloud one header per
    method, each from its own host), so the headers right below count too, up to one of an
    untrusted id or one repeating a method already read (an earlier hop's header, or a
    forgery), and not past the one with the receiver's DMARC verdict, its last word.
    """
    if not trusted:
        return None, {}
    stamp_id: str | None = None
    methods: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for header in auth_results[:MAX_AUTH_HEADERS]:
        authserv_id, found = _results(header)
        if not authserv_trusted(authserv_id, trusted):
            if stamp_id is None:
                continue
            break
        if stamp_id is not None and not methods.keys().isdisjoint(found.keys()):
            break
        if stamp_id is None:
            stamp_id = authserv_id
        methods.update(found)
        if "dmarc" in found:
            break
    return stamp_id, methods


def _receiver_aligned(methods: dict[str, list[tuple[str, dict[str, str]]]], from_domain: str, org: str) -> bool:
    """Whether the receiver's results vouch for from_domain: a DMARC pass, or an aligned DKIM or SPF pass."""
    dmarc = methods.get("dmarc") or []
    verdict = _verdict(dmarc)
    if verdict == "fail":
        return False  # the receiver checked alignment itself and found none: no other clause overrides it
    dmarc_from = next((_domain_of(p.get("header.from")) for r, p in dmarc if r == "pass"), None)
    return ((verdict == "pass" and (dmarc_from is None or dmarc_from == from_domain))
            or _aligned_pass(methods.get("dkim") or [], ("header.d", "header.i"), org)
            or _aligned_pass(methods.get("spf") or [], ("smtp.mailfrom", "smtp.helo"), org))


def _local_verdict(local_dkim: Sequence[tuple[str, str]]) -> str:
    for _, result in local_dkim:
        if result == "pass":
            return "pass"
    return local_dkim[0][1] if local_dkim else "none"


def sender_auth(auth_results: Sequence[str], from_addr: str | None, trusted_authserv_ids: Sequence[str] = (),
                local_dkim: Sequence[tuple[str, str]] | None = None) -> SenderAuth:
    """Who vouches for the From domain: the trusted receiver's headers, else DKIM verified here, else nobody."""
    from_domain = _domain_of(from_addr)
    org = organisational_domain(from_domain) if from_domain else None
    authserv_id, methods = receiver_stamp(auth_results, trusted_authserv_ids)
    dkim, spf, dmarc = methods.get("dkim") or [], methods.get("spf") or [], methods.get("dmarc") or []
    local = local_dkim or ()
    verified_by: str | None = None
    if from_domain and org and authserv_id is not None and _receiver_aligned(methods, from_domain, org):
        verified_by = "authserv:" + authserv_id
    elif org and any(result == "pass" and organisational_domain(domain) == org for domain, result in local):
        verified_by = "dkim"
    dkim_verdict = "pass" if verified_by == "dkim" else _verdict(dkim) if dkim else _local_verdict(local)
    return SenderAuth(from_domain, dkim_verdict, _verdict(spf), _verdict(dmarc), verified_by is not None,
                      authserv_id, verified_by)
