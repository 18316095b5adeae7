"""Hostile tokens: whatever arrives, ``split``/``verify``/``verify_record``/``parse_record`` end in
a ``ProtocolError`` or a valid record, never any other exception (issue 17: one message used to
stop the registry with RecursionError or ValueError).

Mutations of the header and payload are re-signed with the device's real key, so they reach the
parsers behind the signature check, as a compromised or buggy gateway's records would.
"""

from __future__ import annotations

import itertools

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.canonical import canonical_json
from msp_protocol.errors import ProtocolError, RecordError, SignatureError
from msp_protocol.jws import PublicKey, Signer, b64url, split, verify, verify_record
from msp_protocol.records import Record, parse_record
from tests.protocol_data import DEVICE, VIN, body

_KEY = Ed25519PrivateKey.generate()
_SIGNER = Signer(_KEY, DEVICE)
_HEADER = canonical_json({"alg": "EdDSA", "kid": DEVICE})
_RECORD = Record(
    kind="session.start", device=DEVICE, vin=VIN, seq=1, prev=None,
    ts="2026-11-26T08:00:00.000Z", session="s-20261126-0001", body=body("session.start"),
)  # fmt: skip
_PAYLOAD = _RECORD.canonical()
_TOKEN = _SIGNER.sign(_PAYLOAD)
#: Bytes that break JSON, UTF-8, base64 or the schema in different ways.
_HOSTILE = [b"\x00", b"\xff", b'"', b"[", b"{", b"9", b" ", b"\\", b"}", b"\xc3", b",", b"e", b"."]


def _keys(kid: str) -> PublicKey:
    if kid != DEVICE:
        raise SignatureError(f"unknown device {kid!r}", "kid")
    return _SIGNER.public_key()


def _signed(header: bytes, payload: bytes) -> str:
    """A token over arbitrary header and payload bytes, validly signed by the device key."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(_KEY.sign(signing_input.encode('ascii')))}"


def outcome(token: str) -> Record | ProtocolError:
    """What the registry's path makes of a token; any exception but ProtocolError escapes."""
    try:
        record = verify_record(token, _keys)
    except ProtocolError as exc:
        assert isinstance(exc, SignatureError | RecordError), repr(exc)
        return exc
    # Accepted: then it is a valid record whose canonical bytes are exactly what was signed.
    assert record.canonical() == split(token).payload
    assert verify(token, _keys(record.device)).kid == record.device
    return record


def _mutations(data: bytes) -> list[bytes]:
    """``data`` with a hostile byte substituted at, and inserted before, every position."""
    out = []
    for i, byte in zip(range(len(data) + 1), itertools.cycle(_HOSTILE), strict=False):
        out.append(data[:i] + byte + data[i + 1 :])
        out.append(data[:i] + byte + data[i:])
    return [m for m in out if m != data]


def test_the_valid_token_is_a_record() -> None:
    assert outcome(_TOKEN) == _RECORD


def test_every_position_of_the_token_string() -> None:
    text = [b.decode("latin-1") for b in _HOSTILE] + ["A", "_", "-", "=", "\u00e9", "\ud800"]
    results = []
    for i, char in zip(range(len(_TOKEN) + 1), itertools.cycle(text), strict=False):
        for token in (_TOKEN[:i] + char + _TOKEN[i + 1 :], _TOKEN[:i] + char + _TOKEN[i:]):
            if token != _TOKEN:
                results.append(outcome(token))
    # No change to a signed token verifies: every one is refused, none escapes.
    assert len(results) > 2 * len(_TOKEN) - 10
    assert all(isinstance(r, SignatureError) for r in results)


def test_every_position_of_the_header_re_signed() -> None:
    results = [outcome(_signed(header, _PAYLOAD)) for header in _mutations(_HEADER)]
    refused = [r for r in results if isinstance(r, ProtocolError)]
    # A space or a reordering may leave a valid header: the record is then read as it is.
    assert all(r == _RECORD for r in results if isinstance(r, Record))
    assert len(refused) > len(results) // 2
    assert all(isinstance(r, SignatureError) for r in refused)


def test_every_position_of_the_payload_re_signed() -> None:
    results = [outcome(_signed(_HEADER, payload)) for payload in _mutations(_PAYLOAD)]
    # A digit changed inside a string may leave another valid record (checked by outcome());
    # almost every other change breaks the JSON, the schema or the canonical form.
    refused = [r for r in results if isinstance(r, ProtocolError)]
    assert len(results) > 2 * len(_PAYLOAD) - 10
    # Refused by the parser, or (a changed device) because the kid did not sign that device.
    assert all(isinstance(r, RecordError) or r.field == "device" for r in refused)
    assert len(refused) > 0.9 * len(results)


@settings(max_examples=300, deadline=None)
@given(
    part=st.sampled_from(["header", "payload", "signature"]),
    action=st.sampled_from(["substitute", "insert", "delete"]),
    position=st.integers(min_value=0),
    data=st.binary(min_size=1, max_size=8),
)
def test_arbitrary_bytes_anywhere_in_a_valid_token(
    part: str, action: str, position: int, data: bytes
) -> None:
    header_b64, payload_b64, _ = _TOKEN.split(".")
    parts = {"header": _HEADER, "payload": _PAYLOAD, "signature": split(_TOKEN).signature}
    original = parts[part]
    i = position % (len(original) + 1)
    if action == "substitute":
        changed = original[:i] + data + original[i + len(data) :]
    elif action == "insert":
        changed = original[:i] + data + original[i:]
    else:
        changed = original[:i] + original[i + len(data) :]
    if part == "signature":
        token = f"{header_b64}.{payload_b64}.{b64url(changed)}"
    else:
        parts[part] = changed
        token = _signed(parts["header"], parts["payload"])
    result = outcome(token)  # a record (checked inside) or a refusal, nothing else
    if changed == original:
        assert result == _RECORD
    elif part == "signature":
        assert isinstance(result, SignatureError) and result.field == "jws.signature"


@settings(max_examples=200, deadline=None)
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_random_strings_are_refused(token: str) -> None:
    assert isinstance(outcome(token), SignatureError)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.binary(max_size=120), min_size=1, max_size=4))
def test_random_base64url_parts_are_refused(parts: list[bytes]) -> None:
    assert isinstance(outcome(".".join(b64url(p) for p in parts)), SignatureError)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_payload_bytes_are_a_record_error(data: bytes) -> None:
    try:
        parse_record(data)
    except RecordError as exc:
        assert exc.field
    else:
        raise AssertionError(f"random bytes parsed as a record: {data!r}")
    assert isinstance(outcome(_signed(_HEADER, data)), RecordError)


@settings(max_examples=100, deadline=None)
@given(
    depth=st.integers(0, 5000),
    opener=st.sampled_from([b"[", b'{"a":', b'{"alg":[']),
    where=st.sampled_from(["header", "payload", "body"]),
)
def test_any_nesting_depth_is_refused_cleanly(depth: int, opener: bytes, where: str) -> None:
    nested = opener * depth + b"0"
    if where == "header":
        token = _signed(nested, _PAYLOAD)
    elif where == "payload":
        token = _signed(_HEADER, nested)
    else:
        spliced = _PAYLOAD.replace(b'"vehicle_class":"ordinary"', b'"vehicle_class":' + nested)
        assert spliced != _PAYLOAD
        token = _signed(_HEADER, spliced)
    result = outcome(token)
    assert isinstance(result, SignatureError if where == "header" else RecordError)
    if where == "header":
        assert result.field == "jws.header"


@settings(max_examples=100, deadline=None)
@given(
    digits=st.integers(1, 6000),
    fraction=st.booleans(),
    where=st.sampled_from(["alg", "kid", "seq", "body"]),
)
def test_huge_numbers_are_refused_cleanly(digits: int, fraction: bool, where: str) -> None:
    number = b"7" * digits + (b".5" if fraction else b"")
    if where == "alg":
        header = b'{"alg":' + number + b',"kid":"' + DEVICE.encode() + b'"}'
    elif where == "kid":
        header = b'{"alg":"EdDSA","kid":' + number + b"}"
    if where in ("alg", "kid"):
        result = outcome(_signed(header, _PAYLOAD))
        assert isinstance(result, SignatureError)
        assert result.field == (where if digits + 2 * fraction <= 40 else "jws.header")
    else:
        field = b'"seq":1' if where == "seq" else b'"card_signature":"'
        spliced = b'"a":' + number + b"," + field if where == "body" else b'"seq":' + number
        assert field in _PAYLOAD
        result = outcome(_signed(_HEADER, _PAYLOAD.replace(field, spliced)))
        assert isinstance(result, RecordError)
