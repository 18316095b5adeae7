"""JWS: our tokens verify in jwcrypto and theirs in ours; refused algorithms and tampering fail."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk
from jwcrypto import jws as jose

from msp_protocol.canonical import canonical_json
from msp_protocol.errors import RecordError, SignatureError
from msp_protocol.jws import (
    Signer,
    b64url,
    load_public_key,
    public_pem,
    record_hash,
    split,
    verify,
    verify_record,
)
from msp_protocol.records import Record
from tests.protocol_data import DEVICE, VIN, body, make_chain


def _record(seq: int = 1, device: str = DEVICE) -> Record:
    return Record(
        kind="trip", device=device, vin=VIN, seq=seq, prev=None if seq == 1 else "A" * 43,
        ts="2026-11-26T10:15:30.123Z", session="s-1", body=body("trip"),
    )  # fmt: skip


def test_our_tokens_verify_in_jwcrypto(signer: Signer) -> None:
    token = signer.sign_record(_record())
    theirs = jose.JWS()
    theirs.deserialize(token)
    theirs.verify(jwk.JWK.from_pyca(signer.public_key()))
    assert json.loads(theirs.payload) == _record().to_json()
    assert theirs.jose_header == {"alg": signer.alg, "kid": DEVICE}


def test_jwcrypto_tokens_verify_in_ours(signer: Signer) -> None:
    private = jwk.JWK.from_pyca(signer._key)
    theirs = jose.JWS(canonical_json(_record().to_json()))
    theirs.add_signature(private, None, json.dumps({"alg": signer.alg, "kid": DEVICE}))
    token = theirs.serialize(compact=True)
    assert verify_record(token, lambda kid: signer.public_key()) == _record()


def test_public_key_pem_round_trips(signer: Signer) -> None:
    token = signer.sign(b"{}")
    key = load_public_key(signer.public_pem().encode())
    assert verify(token, key).payload == b"{}"
    assert public_pem(key) == signer.public_pem()


def _forge(header: dict[str, object], payload: bytes, signature: bytes = b"x" * 64) -> str:
    return ".".join(b64url(p) for p in (json.dumps(header).encode(), payload, signature))


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384", None])
def test_refused_algorithms(alg: str | None, ed_signer: Signer) -> None:
    token = _forge({"alg": alg, "kid": DEVICE}, b"{}")
    with pytest.raises(SignatureError, match="is refused") as info:
        verify(token, ed_signer.public_key())
    assert info.value.field == "alg"


def test_algorithm_confusion_is_refused(ed_signer: Signer, es_signer: Signer) -> None:
    # An ES256 token presented for an Ed25519 key, and the other way round.
    with pytest.raises(SignatureError, match="header says ES256, the key is for EdDSA"):
        verify(es_signer.sign(b"{}"), ed_signer.public_key())
    with pytest.raises(SignatureError, match="header says EdDSA, the key is for ES256"):
        verify(ed_signer.sign(b"{}"), es_signer.public_key())


def test_other_curves_are_refused() -> None:
    with pytest.raises(SignatureError, match="secp384r1 is not allowed"):
        Signer(ec.generate_private_key(ec.SECP384R1()), DEVICE)


@pytest.mark.parametrize("extra", [{"crit": ["b64"]}, {"b64": False}, {"jku": "http://x"}])
def test_unknown_header_parameters_are_refused(extra: dict[str, object], ed_signer: Signer) -> None:
    with pytest.raises(SignatureError, match="unsupported header parameters"):
        split(_forge({"alg": "EdDSA", "kid": DEVICE, **extra}, b"{}"))


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("a.b", "2 parts"),
        ("a.b.c.d", "4 parts"),
        ("eyJ=.e30.AA", "not unpadded base64url"),
        (b64url(b"[1]") + ".e30.AA", "header is not an object"),
        ("bm90IGpzb24.e30.AA", "jws.header: not JSON"),
        ("ey\u00e9.e30.AA", "not an ASCII string"),
    ],
)
def test_malformed_tokens_are_named(token: str, words: str) -> None:
    with pytest.raises(SignatureError, match=words):
        split(token)


def test_kid_must_be_the_record_device(ed_signer: Signer) -> None:
    with pytest.raises(SignatureError, match="record of 'gw-0002'"):
        ed_signer.sign_record(_record(device="gw-0002"))
    other = Signer(ed_signer._key, "gw-0002")  # same key, kid of another device
    token = other.sign(_record().canonical())
    with pytest.raises(SignatureError, match="kid 'gw-0002' signed a record of 'gw-0001'"):
        verify_record(token, lambda kid: ed_signer.public_key())


def test_a_valid_signature_over_an_invalid_record_is_still_refused(ed_signer: Signer) -> None:
    token = ed_signer.sign(b'{"v": 1}')
    with pytest.raises(RecordError, match="required field is missing"):
        verify_record(token, lambda kid: ed_signer.public_key())


def test_unknown_device_key_lookup_error_propagates(ed_signer: Signer) -> None:
    def keys(kid: str) -> Ed25519PrivateKey:
        raise SignatureError(f"unknown device {kid}", "kid")

    with pytest.raises(SignatureError, match="unknown device gw-0001"):
        verify_record(ed_signer.sign_record(_record()), keys)  # type: ignore[arg-type]


def test_record_hash_is_sha256_of_the_jws_string(ed_signer: Signer) -> None:
    (token,) = make_chain(ed_signer, ["trip"])

    digest = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=")
    assert record_hash(token) == digest.decode()


_SIGNER = Signer(Ed25519PrivateKey.generate(), DEVICE)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), char=st.sampled_from("AQgw_-09azZ.="))
def test_changing_any_character_breaks_verification(position: int, char: str) -> None:
    token = _SIGNER.sign(_record().canonical())
    position %= len(token)
    tampered = token[:position] + char + token[position + 1 :]
    if tampered == token:
        return
    with pytest.raises((SignatureError, RecordError)):
        verify_record(tampered, lambda kid: _SIGNER.public_key())


# --- Strictness and RFC 9864 (issue 17). -------------------------------------------------------


def _raw(key: Ed25519PrivateKey, header: bytes, payload: bytes) -> str:
    """A token over exactly these header bytes, validly signed."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def test_a_header_with_a_duplicate_kid_is_refused(ed_signer: Signer) -> None:
    key = ed_signer._key
    assert isinstance(key, Ed25519PrivateKey)
    header = b'{"alg":"EdDSA","kid":"gw-0001","kid":"gw-0002"}'
    with pytest.raises(SignatureError, match="duplicate key 'kid'") as info:
        split(_raw(key, header, _record().canonical()))
    assert info.value.field == "jws.header"


@pytest.mark.parametrize(
    "header",
    [
        b"[" * 3000,  # RecursionError in json.loads
        b'{"alg":' + b"1" * 5000 + b',"kid":"gw-0001"}',  # ValueError: Python's int digit limit
        b'{"alg":"EdDSA","kid":"gw-0001","x":' + b"[" * 100 + b"]" * 100 + b"}",
        '{"alg":"EdDSA","kid":"gw-0001"}'.encode("utf-16"),
    ],
)
def test_hostile_headers_are_signature_errors(header: bytes, ed_signer: Signer) -> None:
    assert isinstance(ed_signer._key, Ed25519PrivateKey)
    token = _raw(ed_signer._key, header, _record().canonical())
    with pytest.raises(SignatureError) as info:
        verify_record(token, lambda kid: ed_signer.public_key())
    assert info.value.field == "jws.header"


@pytest.mark.parametrize("number", [b"1" * 5000, b"1e999", b"1" * 41])
def test_a_signed_payload_with_a_huge_number_is_a_record_error(
    number: bytes, ed_signer: Signer
) -> None:
    payload = _record().canonical().replace(b'"seq":1', b'"seq":' + number)
    with pytest.raises(RecordError) as info:  # a plain ValueError escaped before
        verify_record(ed_signer.sign(payload), lambda kid: ed_signer.public_key())
    assert info.value.field == "(record)"


@pytest.mark.parametrize("kid", ["gw 0001", "gw/0001", "gw-0001\n", "-gw", "g" * 65, "\u00e9"])
def test_a_kid_that_is_not_a_device_id_is_refused(kid: str, ed_signer: Signer) -> None:
    assert isinstance(ed_signer._key, Ed25519PrivateKey)
    header = canonical_json({"alg": "EdDSA", "kid": kid})
    with pytest.raises(SignatureError, match="not a device id") as info:
        split(_raw(ed_signer._key, header, b"{}"))
    assert info.value.field == "kid"


def test_the_fully_specified_ed25519_alg_verifies(ed_signer: Signer, es_signer: Signer) -> None:
    assert isinstance(ed_signer._key, Ed25519PrivateKey)
    record = _record()
    header = canonical_json({"alg": "Ed25519", "kid": DEVICE})
    token = _raw(ed_signer._key, header, record.canonical())
    assert split(token).alg == "Ed25519"
    assert verify_record(token, lambda kid: ed_signer.public_key()) == record
    with pytest.raises(SignatureError, match="header says Ed25519, the key is for ES256") as info:
        verify(token, es_signer.public_key())
    assert info.value.field == "alg"
    assert ed_signer.alg == "EdDSA"  # what we write
    assert json.loads(base64.urlsafe_b64decode(ed_signer.sign(b"{}").split(".")[0] + "=="))[
        "alg"] == "EdDSA"  # fmt: skip


def test_jwcrypto_ed25519_alg_tokens_verify_in_ours(ed_signer: Signer) -> None:
    theirs = jose.JWS(_record().canonical())
    theirs.add_signature(jwk.JWK.from_pyca(ed_signer._key), None,
                         json.dumps({"alg": "Ed25519", "kid": DEVICE}))  # fmt: skip
    theirs.allowed_algs = ["Ed25519"]
    token = theirs.serialize(compact=True)
    assert verify_record(token, lambda kid: ed_signer.public_key()) == _record()
