"""The results of extraction: plain dataclasses, which the parser workers pickle and the cache stores as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

EXTRACTOR_VERSION = 3  # bump when results change, so `inbox reindex` re-runs cached mail


@dataclass(frozen=True)
class Code:
    """A one-time code and why it was taken for one."""

    code: str
    confidence: float
    kind: str  # numeric | alphanumeric
    source: str  # subject | body
    evidence: str


@dataclass(frozen=True)
class Link:
    """A link of the mail, classified by what following it would do."""

    url: str
    kind: str  # verify | magic_signin | reset | unsubscribe | other
    confidence: float
    text: str


@dataclass(frozen=True)
class SenderAuth:
    """Who vouched for the From domain: the account's receiving server (its verdicts), local DKIM, or nobody."""

    from_domain: str | None
    dkim: str = "none"
    spf: str = "none"
    dmarc: str = "none"
    aligned: bool = False
    authserv_id: str | None = None  # the trusted receiving server whose verdicts these are, if any
    verified_by: str | None = None  # "authserv:<id>", "dkim" (verified here), or None: nothing vouched


@dataclass(frozen=True)
class Extraction:
    """Everything extracted from one message."""

    extracted_text: str = ""
    codes: tuple[Code, ...] = ()
    links: tuple[Link, ...] = ()
    auth: SenderAuth = field(default_factory=lambda: SenderAuth(None))
    version: int = EXTRACTOR_VERSION

    def to_json(self) -> dict[str, Any]:
        """The JSON shape stored in the cache and shown to readers."""
        return {"extractedText": self.extracted_text, "codes": [asdict(c) for c in self.codes],
                "links": [asdict(link) for link in self.links], "auth": asdict(self.auth)}


@dataclass
class Rendered:
    """HTML as text: the main part, the quoted part (blockquotes etc.), and the anchors."""

    main: str
    quoted: str
    anchors: list[tuple[str, str]]  # (href, text) in document order, main part only
