"""PII redaction: e-mail addresses, IP addresses, phone numbers and secrets (API keys, tokens,
private keys) become typed placeholders, and the document is tagged ``pii_redacted``.

Written here because none of our libraries does it offline for every domain: datatrove's
``PIIFormatter`` covers only e-mail and IP addresses (and swaps in fake values, which a model
then learns as if real); Presidio needs spaCy models we cannot download. The placeholders are
typed (``<EMAIL_ADDRESS>``, ``<IP_ADDRESS>``, ``<PHONE_NUMBER>``, ``<SECRET>``) so a model
learns that something was there, not a fake instance of it.

Precision over recall where the two pull apart, because a false positive corrupts text:
- IP addresses are redacted only when public (``ipaddress.is_global``): 127.0.0.1,
  192.168.x.x or 10.x.x.x in documentation and code identify no one; dotted numbers after
  "§", "section" or "version", and addresses with three single-digit octets (public resolvers
  such as 8.8.8.8, section and version numbers such as 8.2.4.44 or 7.1.4.34) are left too;
- phone numbers need a ``+`` country code or the grouped (3-3-4) North American form with
  separators, so plain digit runs, dates, versions and numbers in math are left alone;
- secrets are matched by their published formats (AWS, GitHub, Slack, Google, Stripe,
  OpenAI-style keys, JSON Web Tokens, PEM private key blocks), not by entropy guesses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Callable

from filters.base import KEEP, Document, DocumentFilter, Verdict

PII_TAG = "pii_redacted"


@dataclass(frozen=True)
class PiiKind:
    name: str  # also the ``scores`` key suffix: pii_<name> counts redactions of this kind
    placeholder: str
    pattern: re.Pattern[str]
    accept: Callable[[re.Match[str]], bool] = lambda match: True  # a second look at a candidate


# Dotted numbers that are section or version numbers, not addresses: "C99 §6.3.1.8",
# "HTML5 section 8.2.4.44", "version 2.7.18.1".
_NUMBERING_CONTEXT = re.compile(r"(?:§|\b(?:sections?|chapters?|versions?|rfc|v))[\s\"'(]*$", re.IGNORECASE)


def _public_ip(match: re.Match[str]) -> bool:
    candidate = match.group()
    if "." in candidate:
        if _NUMBERING_CONTEXT.search(match.string[max(0, match.start() - 12) : match.start()]):
            return False
        if sum(len(octet) == 1 for octet in candidate.split(".")) >= 3:
            return False  # 8.8.8.8, 7.1.4.34: public resolvers, section or version numbers
    if ":" in candidate:
        # C++ scopes ("a::b") and ratios parse as IPv6 too; a real address has at least three
        # groups, one of them four hex digits long.
        groups = [group for group in candidate.split(":") if group]
        if len(groups) < 3 or not any(len(group) == 4 for group in groups):
            return False
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False  # looked like an address, is not one (e.g. 999.1.1.1)


_SECRET_FORMATS = "|".join([
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"
    r"[\s\S]*?-----END (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b",  # Slack
    r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
    r"\b[sr]k_(?:live|test)_[0-9A-Za-z]{24,99}\b",  # Stripe
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,200}\b",  # OpenAI / Anthropic style
    r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",  # JSON Web Token
])

# Order matters: secrets first (a key may hold digit runs or an @), then e-mail before IP
# (an address may follow the @), and phone numbers last.
KINDS: tuple[PiiKind, ...] = (
    PiiKind("secret", "<SECRET>", re.compile(_SECRET_FORMATS)),
    PiiKind("email", "<EMAIL_ADDRESS>",
            re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")),
    PiiKind("ip_address", "<IP_ADDRESS>",
            re.compile(r"(?<![\w.:])(?:(?:\d{1,3}\.){3}\d{1,3}|(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)"
                       r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w:])(?!\.\w)"),  # a final full stop may follow
            _public_ip),
    PiiKind("phone_number", "<PHONE_NUMBER>",
            re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){2,4}"
                       r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])")),
)


def redact(text: str, kinds: tuple[PiiKind, ...] = KINDS) -> tuple[str, dict[str, int]]:
    """``text`` with every accepted match replaced by its kind's placeholder, and the number
    of redactions per kind name."""
    counts: dict[str, int] = {}
    for kind in kinds:
        found = 0

        def replace(match: re.Match[str], kind: PiiKind = kind) -> str:
            nonlocal found
            if not kind.accept(match):
                return match.group()
            found += 1
            return kind.placeholder

        text = kind.pattern.sub(replace, text)
        if found:
            counts[kind.name] = found
    return text, counts


class PiiRedactor(DocumentFilter):
    """Rewrites the text with placeholders; never drops. Records ``pii_<kind>`` counts."""

    name = "pii"
    needs = ("text",)
    adds = ("text", "tags", "scores")

    def check(self, doc: Document) -> Verdict:
        doc.text, counts = redact(doc.text)
        if counts:
            doc.add_tag(PII_TAG)
            doc.scores.update({f"pii_{kind}": float(n) for kind, n in counts.items()})
        return KEEP
