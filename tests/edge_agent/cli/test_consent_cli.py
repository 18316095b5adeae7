"""``msp-agent card consent``/``login`` at the gateway: a recipient the registry does not know
is refused before the card is touched, naming the known ones; a bad recipients list is a
clear error naming the file; a grant signed with the card lands in the outbox as a checked,
card-signed ``consent`` record (virtual card behind a real pcscd)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from edge_agent import later_consents
from edge_agent.card.image import make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.card.pcsc import PcscTransport
from edge_agent.card.pcscd import READER_NAME, PrivatePcscd
from edge_agent.card.virtual import VirtualCard
from edge_agent.card.vpcd import VpcdCard
from edge_agent.cli import main
from edge_agent.errors import ConfigError
from edge_agent.identity.recipients import KnownRecipients, check_known
from edge_agent.keys import init_device_key, load_signer
from edge_agent.outbox import Outbox
from msp_protocol import bodies
from msp_protocol.consent import statement_bytes
from msp_protocol.jws import split
from msp_protocol.records import parse_record
from tests.sync_deploy import wait_for

PIN = "1357"


def recipients_file(tmp_path: Path, value: object) -> Path:
    path = tmp_path / "recipients.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


@pytest.fixture
def known(tmp_path: Path) -> Path:
    return recipients_file(tmp_path, {"recipients": [{"id": "acme", "role": "fleet"},
                                                     {"id": "public", "role": "public"}]})


def test_a_grant_to_an_unknown_recipient_is_refused_listing_the_known_ones(
    known: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["card", "consent", "grant", "acme-corp", "--categories", "driving",
                 "--recipients", str(known), "--reader", "no such reader"])  # fmt: skip
    assert code == 2
    assert "unknown recipient 'acme-corp': the registry knows acme, public" in (
        capsys.readouterr().err)


def test_a_login_request_for_an_unknown_recipient_is_refused(
    tmp_path: Path, known: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "agent.toml"
    request.write_text('[card.consent]\nrecipient = "acme-corp"\ncategories = ["driving"]\n')
    anchor = tmp_path / "ca.pem"
    TestIssuer.create().save(anchor, tmp_path / "ca.key")
    code = main(["card", "login", "--consent-request", str(request), "--consent", "driving",
                 "--recipients", str(known), "--trust-anchor", str(anchor)])  # fmt: skip
    assert code == 2
    assert "the registry knows acme, public" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "words"), [
    ("[]", "expected {\"recipients\""),
    ('{"recipients": [{"id": "a b", "role": "fleet"}]}', "recipients[0]: id"),
    ('{"recipients": [{"id": "acme", "role": "boss"}]}', "role 'boss' is not one of"),
    ("{", "cannot read the recipients list"),
])  # fmt: skip
def test_a_bad_recipients_list_names_the_file_and_entry(tmp_path: Path, value: str,
                                                        words: str) -> None:  # fmt: skip
    path = tmp_path / "recipients.json"
    path.write_text(value)
    with pytest.raises(ConfigError, match=r"recipients\.json") as info:
        KnownRecipients.load(path)
    assert words in str(info.value)


def test_public_is_always_known_and_a_missing_default_list_is_not_checked(tmp_path: Path
                                                                         ) -> None:  # fmt: skip
    path = recipients_file(tmp_path, {"recipients": [{"id": "acme", "role": "fleet"}]})
    assert KnownRecipients.load(path).ids() == ["acme", "public"]
    check_known("anyone", env={"MSP_RECIPIENTS": str(tmp_path / "absent.json")})
    with pytest.raises(ConfigError, match=r"absent\.json"):
        check_known("anyone", tmp_path / "absent.json")


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


def test_a_grant_signed_by_the_card_goes_into_the_outbox(
    tmp_path: Path, known: Path, pcscd: PrivatePcscd, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer = TestIssuer.create()
    anchor = tmp_path / "ca.pem"
    issuer.save(anchor, tmp_path / "ca.key")
    image = make_test_card(issuer, pin=PIN, licence=LicenceData(date(2030, 1, 31), ("普通",)))
    card = VirtualCard(image)
    vpcd = VpcdCard(card, port=pcscd.port)
    init_device_key(tmp_path / "device.key", "gw-cli1")
    args = ["--reader", READER_NAME, "--pin", PIN, "--trust-anchor", str(anchor),
            "--outbox", str(tmp_path / "outbox.db"), "--key", str(tmp_path / "device.key"),
            "--device", "gw-cli1", "--vin", "JTCLI000001", "--recipients", str(known)]
    try:
        vpcd.insert()
        wait_for(PcscTransport(READER_NAME).card_present, "pcscd sees the card")
        assert main(["card", "consent", "grant", "acme", "--categories", "score,driving",
                     "--days", "30", "--json", *args]) == 0  # fmt: skip
        assert main(["card", "consent", "grant", "acme", "--categories", "driving",
                     "--json", *[a if a != PIN else "0000" for a in args]]) == 1  # wrong PIN
    finally:
        vpcd.remove()
    out = capsys.readouterr()
    granted = json.loads(out.out.splitlines()[0])
    assert granted["categories"] == ["driving", "score"] and granted["seq"] == 1
    assert "card refused [pin_wrong]" in out.err
    outbox = Outbox.open(tmp_path / "outbox.db", load_signer(tmp_path / "device.key",
                                                             "gw-cli1"), "JTCLI000001")
    try:
        (stored,) = list(outbox.records())
    finally:
        outbox.close()
    record = parse_record(split(stored.jws).payload)
    body = record.body
    assert isinstance(body, bodies.CardConsent) and record.kind == "consent"
    assert body.statement.recipient == "acme" and body.statement.until == granted["until"]
    key = x509.load_der_x509_certificate(image.auth_certificate).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(body.card_signature), statement_bytes(body.statement),
               padding.PKCS1v15(), hashes.SHA256())  # the card's own signature
    # and beside the outbox for the running agent, under the card's certificate hash
    assert later_consents.statements(later_consents.beside(tmp_path / "outbox.db"),
                                     body.card_certificate_sha256) == [body.statement]
