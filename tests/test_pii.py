"""PII redaction: each kind becomes its typed placeholder; look-alikes are left alone."""

from __future__ import annotations

import pytest

from filters.base import Document
from filters.pii import PII_TAG, PiiRedactor, redact

FAKE_GITHUB = "ghp_" + "A1b2C3d4" * 5
FAKE_OPENAI = "sk-proj-" + "x9Y8z7W6" * 5


@pytest.mark.parametrize("text,expected,counts", [
    ("Write to jane.doe+news@example.co.uk or admin@mail.python.org today.",
     "Write to <EMAIL_ADDRESS> or <EMAIL_ADDRESS> today.", {"email": 2}),
    ("Client 81.2.69.160 via 2001:4860:4860::8888.",
     "Client <IP_ADDRESS> via <IP_ADDRESS>.", {"ip_address": 2}),
    ("Call +1 415-555-0132, (212) 555-0199 or 650.555.1234.",
     "Call <PHONE_NUMBER>, <PHONE_NUMBER> or <PHONE_NUMBER>.", {"phone_number": 3}),
    (f"aws AKIAIOSFODNN7EXAMPLE gh {FAKE_GITHUB} openai {FAKE_OPENAI}",
     "aws <SECRET> gh <SECRET> openai <SECRET>", {"secret": 3}),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nkept",
     "<SECRET>\nkept", {"secret": 1}),
])
def test_each_kind_becomes_its_placeholder(text, expected, counts):
    assert redact(text) == (expected, counts)


@pytest.mark.parametrize("text", [
    "localhost 127.0.0.1, LAN 192.168.1.20 and 10.0.0.1 identify no one",
    "version 1.2.3.4.5 and the impossible 999.1.1.1",
    "arithmetic conversions (C99 §6.3.1.8), HTML5 sections \"8.2.4.44 Bogus\", resolver 8.8.8.8",
    "e.g., ['7.1.4.34', 1806] and 10.0.12.250 on the LAN",
    "dates 2021-05-06, ISBN 978-3-16-148410-0, pi 3.14159, a run 12345678901",
    "C++ std::vector and a::b, clock 12:30:45, MAC 00:1A:2B:3C:4D:5E, ratio 3:4:5",
    "decorators @property and handles like @python_dev are not addresses",
])
def test_look_alikes_are_left_alone(text):
    assert redact(text) == (text, {})


def test_the_filter_tags_and_counts_but_never_drops():
    doc = Document(id="d", text="Mail bob@example.org from 203.0.113.9? No: from 81.2.69.142.", source="s")
    assert PiiRedactor().check(doc).keep
    assert doc.text == "Mail <EMAIL_ADDRESS> from 203.0.113.9? No: from <IP_ADDRESS>."  # 203.0.113/24 is documentation
    assert PII_TAG in doc.tags and doc.scores == {"pii_email": 1.0, "pii_ip_address": 1.0}
    clean = Document(id="c", text="Nothing personal here.", source="s")
    assert PiiRedactor().check(clean).keep and clean.tags == [] and clean.scores == {}
