"""Offline certificate checks: each failure is refused with its own problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edge_agent.card.issuer import TestIssuer, new_rsa_key
from edge_agent.errors import ConfigError
from edge_agent.identity.errors import CertificateProblem, CertificateRejectedError
from edge_agent.identity.trust import TrustStore

NOW = datetime.now(UTC)
KEY = new_rsa_key()


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def leaf(issuer: TestIssuer, **kwargs: object) -> bytes:
    return der(issuer.issue_auth_certificate(KEY.public_key(), **kwargs))  # type: ignore[arg-type]


def rejected(store: TrustStore, cert: bytes, cas: list[bytes] | None = None) -> CertificateProblem:
    with pytest.raises(CertificateRejectedError) as caught:
        store.check(cert, cas or [], NOW)
    return caught.value.problem


def test_a_good_certificate_passes(issuer: TestIssuer) -> None:
    cert = leaf(issuer)
    assert TrustStore((issuer.certificate,)).check(cert, [], NOW).public_bytes(Encoding.DER) == cert


def test_expired(issuer: TestIssuer) -> None:
    cert = leaf(issuer, not_before=NOW - timedelta(days=2000), not_after=NOW - timedelta(days=1))
    assert rejected(TrustStore((issuer.certificate,)), cert) is CertificateProblem.EXPIRED


def test_not_yet_valid(issuer: TestIssuer) -> None:
    cert = leaf(issuer, not_before=NOW + timedelta(days=1))
    assert rejected(TrustStore((issuer.certificate,)), cert) is CertificateProblem.NOT_YET_VALID


def test_wrong_issuer(issuer: TestIssuer, other_issuer: TestIssuer) -> None:
    cert = leaf(other_issuer)
    assert rejected(TrustStore((issuer.certificate,)), cert) is CertificateProblem.UNTRUSTED


def test_the_card_cannot_bring_its_own_root(issuer: TestIssuer, other_issuer: TestIssuer) -> None:
    cert = leaf(other_issuer)
    store = TrustStore((issuer.certificate,))
    assert rejected(store, cert, [der(other_issuer.certificate)]) is CertificateProblem.UNTRUSTED


def test_same_name_other_key_is_untrusted(issuer: TestIssuer) -> None:
    impostor = TestIssuer.create(
        issuer.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    )  # type: ignore[arg-type]
    assert (
        rejected(TrustStore((issuer.certificate,)), leaf(impostor)) is CertificateProblem.UNTRUSTED
    )


def test_wrong_key_usage(issuer: TestIssuer) -> None:
    cert = leaf(issuer, digital_signature=False)
    assert rejected(TrustStore((issuer.certificate,)), cert) is CertificateProblem.KEY_USAGE


def test_a_ca_certificate_is_not_a_card_certificate(issuer: TestIssuer) -> None:
    sub = TestIssuer.create("sub CA", issuer=issuer)
    problem = rejected(TrustStore((issuer.certificate,)), der(sub.certificate))
    assert problem is CertificateProblem.KEY_USAGE


def test_revoked_by_crl(issuer: TestIssuer) -> None:
    cert = leaf(issuer)
    serial = x509.load_der_x509_certificate(cert).serial_number
    store = TrustStore((issuer.certificate,), (issuer.crl([serial]),))
    with pytest.raises(CertificateRejectedError, match=f"serial {serial:x} is revoked") as caught:
        store.check(cert, [], NOW)
    assert caught.value.problem is CertificateProblem.REVOKED


def test_crl_of_another_issuer_or_with_a_bad_signature_is_not_obeyed(
    issuer: TestIssuer, other_issuer: TestIssuer
) -> None:
    cert = leaf(issuer)
    serial = x509.load_der_x509_certificate(cert).serial_number
    forged = TestIssuer(other_issuer.key, issuer.certificate).crl([serial])  # issuer's name
    store = TrustStore((issuer.certificate,), (other_issuer.crl([serial]), forged))
    assert store.check(cert, [], NOW).serial_number == serial


def test_chain_through_an_intermediate_from_the_card(issuer: TestIssuer) -> None:
    sub = TestIssuer.create("MSP TEST sub CA", issuer=issuer)
    cert = leaf(sub)
    store = TrustStore((issuer.certificate,))
    assert store.check(cert, [der(sub.certificate)], NOW).issuer == sub.certificate.subject
    assert rejected(store, cert) is CertificateProblem.UNTRUSTED  # without the intermediate


def test_revoked_intermediate(issuer: TestIssuer) -> None:
    sub = TestIssuer.create("MSP TEST sub CA 2", issuer=issuer)
    store = TrustStore((issuer.certificate,), (issuer.crl([sub.certificate.serial_number]),))
    assert rejected(store, leaf(sub), [der(sub.certificate)]) is CertificateProblem.REVOKED


def test_malformed(issuer: TestIssuer) -> None:
    assert (
        rejected(TrustStore((issuer.certificate,)), b"\x30\x03abc") is CertificateProblem.MALFORMED
    )


def test_load_reads_pem_bundles_and_der(
    issuer: TestIssuer, other_issuer: TestIssuer, tmp_path: Path
) -> None:
    bundle = tmp_path / "anchors.pem"
    bundle.write_bytes(
        issuer.certificate.public_bytes(Encoding.PEM)
        + other_issuer.certificate.public_bytes(Encoding.PEM)
    )
    crl = tmp_path / "ca.crl"
    crl.write_bytes(issuer.crl([1]).public_bytes(Encoding.DER))
    store = TrustStore.load([bundle], [crl])
    assert store.anchors == (issuer.certificate, other_issuer.certificate)
    assert len(store.crls) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.pem", b"-----BEGIN CERTIFICATE-----\nxx", "not a PEM or DER cert"),
        ("b.der", b"\x00\x01", "not a PEM or DER cert"),
    ],
)
def test_load_names_a_bad_anchor_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        TrustStore.load([path])
    assert str(path) in str(caught.value)


def test_load_names_a_missing_or_bad_crl(issuer: TestIssuer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read CRL"):
        TrustStore.load([], [tmp_path / "missing.crl"])
    bad = tmp_path / "bad.crl"
    bad.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"bad\.crl: not a PEM or DER CRL"):
        TrustStore.load([], [bad])
