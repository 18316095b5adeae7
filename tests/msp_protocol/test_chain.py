"""The chain verifier: a good chain passes; each kind of break is named at its first seq."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.bodies import EvictedRange, Gap
from msp_protocol.chain import Anchor, verify_chain
from msp_protocol.errors import ChainError
from msp_protocol.jws import Signer, record_hash, split
from msp_protocol.records import Record, parse_record
from tests.protocol_data import VIN, make_chain

KINDS = ["session.start", "trip", "event", "health", "stats", "event", "trip", "session.end"]
_SIGNER = Signer(Ed25519PrivateKey.generate(), "gw-0001")
_CHAIN = make_chain(_SIGNER, KINDS)


def keys_of(signer: Signer):  # type: ignore[no-untyped-def]
    return lambda kid: signer.public_key()


def breaks(tokens: list[str], signer: Signer, **kw: object) -> ChainError:
    with pytest.raises(ChainError) as info:
        verify_chain(tokens, keys_of(signer), **kw)  # type: ignore[arg-type]
    return info.value


def resign(signer: Signer, token: str, **changes: object) -> str:
    record = parse_record(split(token).payload)
    fields = {f: getattr(record, f) for f in Record.__dataclass_fields__}
    fields.update(changes)
    return signer.sign_record(Record(**fields))  # type: ignore[arg-type]


def test_a_good_chain_verifies_in_any_order_with_duplicates(signer: Signer) -> None:
    tokens = make_chain(signer, KINDS)
    report = verify_chain([*reversed(tokens), tokens[3]], keys_of(signer))
    assert (report.first_seq, report.last_seq, report.records) == (1, 8, 8)
    assert report.last_hash == record_hash(tokens[-1])


def test_gap_is_named_at_the_first_missing_seq(ed_signer: Signer) -> None:
    tokens = make_chain(ed_signer, KINDS)
    error = breaks(tokens[:3] + tokens[5:], ed_signer)
    assert (error.seq, error.reason) == (4, "gap")


def test_fork_two_contents_for_one_seq(ed_signer: Signer) -> None:
    tokens = make_chain(ed_signer, KINDS)
    forked = resign(ed_signer, tokens[4], session="other")
    error = breaks([*tokens, forked], ed_signer)
    assert (error.seq, error.reason) == (5, "fork")


def test_bad_signature(ed_signer: Signer) -> None:
    tokens = make_chain(ed_signer, KINDS)
    head, payload, sig = tokens[6].split(".")
    tokens[6] = f"{head}.{payload}.{sig[::-1]}"
    error = breaks(tokens, ed_signer)
    assert (error.seq, error.reason) == (7, "bad_signature")


def test_rewritten_record_breaks_the_next_prev(ed_signer: Signer) -> None:
    tokens = make_chain(ed_signer, KINDS)
    tokens[2] = resign(ed_signer, tokens[2], session="rewritten")
    error = breaks(tokens, ed_signer)
    assert (error.seq, error.reason) == (4, "bad_prev")


def test_other_device_in_the_set(ed_signer: Signer) -> None:
    tokens = make_chain(ed_signer, KINDS)
    other = Signer(ed_signer._key, "gw-0002")
    tokens[5] = resign(other, tokens[5], device="gw-0002")
    error = breaks(tokens, ed_signer)
    assert (error.seq, error.reason) == (6, "device")


def test_garbage_in_the_input_is_a_bad_record(ed_signer: Signer) -> None:
    error = breaks([*make_chain(ed_signer, KINDS), "not.a.jws"], ed_signer)
    assert error.reason == "bad_record"
    assert "record #9 in input" in str(error)


def test_partial_chain_and_anchor(ed_signer: Signer) -> None:
    tokens = make_chain(ed_signer, KINDS)
    assert verify_chain(tokens[3:], keys_of(ed_signer)).first_seq == 4
    anchor = Anchor(3, record_hash(tokens[2]))
    assert verify_chain(tokens[3:], keys_of(ed_signer), anchor=anchor).records == 5
    error = breaks(tokens[3:], ed_signer, anchor=Anchor(3, record_hash(tokens[1])))
    assert (error.seq, error.reason) == (4, "bad_prev")
    error = breaks(tokens[4:], ed_signer, anchor=anchor)
    assert (error.seq, error.reason) == (4, "gap")


def _with_gap(signer: Signer, evicted: list[int], claimed_hash: str | None = None) -> list[str]:
    """A chain of 8 whose evicted seqs are dropped and declared by a gap record at seq 9."""
    tokens = make_chain(signer, KINDS)
    last = max(evicted)
    gap = Gap(
        reason="size_bound",
        ranges=(
            EvictedRange(
                first=min(evicted), last=last,
                last_sha256=claimed_hash or record_hash(tokens[last - 1]), kinds={"health": 1},
            ),
        ),
    )  # fmt: skip
    marker = Record(
        kind="gap", device=signer.kid, vin=VIN, seq=9, prev=record_hash(tokens[-1]),
        ts="2026-11-26T09:00:00.000Z", session=None, body=gap,
    )  # fmt: skip
    return [t for i, t in enumerate(tokens, 1) if i not in evicted] + [signer.sign_record(marker)]


def test_declared_eviction_is_not_a_break(ed_signer: Signer) -> None:
    report = verify_chain(_with_gap(ed_signer, [4, 5]), keys_of(ed_signer))
    assert (report.records, report.evicted, report.last_seq) == (7, 2, 9)


def test_a_gap_record_declaring_a_wrong_hash_is_caught(ed_signer: Signer) -> None:
    error = breaks(_with_gap(ed_signer, [4, 5], claimed_hash="B" * 43), ed_signer)
    assert (error.seq, error.reason) == (6, "bad_prev")


def test_eviction_declared_but_record_present_must_match(ed_signer: Signer) -> None:
    tokens = _with_gap(ed_signer, [4], claimed_hash="C" * 43)
    tokens.append(make_chain(ed_signer, KINDS)[3])  # the "evicted" record arrives after all
    error = breaks(tokens, ed_signer)
    assert (error.seq, error.reason) == (4, "bad_gap")


@settings(max_examples=40, deadline=None)
@given(dropped=st.sets(st.integers(min_value=2, max_value=7), min_size=1))
def test_dropping_records_is_named_at_the_lowest_dropped_seq(dropped: set[int]) -> None:
    tokens = _CHAIN
    kept = [t for i, t in enumerate(tokens, 1) if i not in dropped]
    error = breaks(kept, _SIGNER)
    assert (error.seq, error.reason) == (min(dropped), "gap")


def test_a_gap_record_cannot_declare_later_seqs(ed_signer: Signer) -> None:
    tokens = make_chain(ed_signer, KINDS)
    gap = Gap(
        reason="size_bound",
        ranges=(EvictedRange(first=9, last=12, last_sha256="D" * 43, kinds={"trip": 4}),),
    )
    marker = Record(
        kind="gap", device=ed_signer.kid, vin=VIN, seq=9, prev=record_hash(tokens[-1]),
        ts="2026-11-26T09:00:00.000Z", session=None, body=gap,
    )  # fmt: skip
    error = breaks([*tokens, ed_signer.sign_record(marker)], ed_signer)
    assert (error.seq, error.reason) == (9, "bad_gap")


def test_nothing_to_verify_is_an_error(ed_signer: Signer) -> None:
    assert breaks([], ed_signer).reason == "empty"


@settings(max_examples=100, deadline=None)
@given(
    which=st.integers(min_value=0),
    position=st.integers(min_value=0),
    data=st.text(min_size=1, max_size=6) | st.just("[" * 3000) | st.just("9" * 5000),
)
def test_hostile_text_in_any_token_ends_in_a_report_or_a_chain_error(
    which: int, position: int, data: str
) -> None:
    tokens = list(_CHAIN)
    i = which % len(tokens)
    at = position % (len(tokens[i]) + 1)
    tokens[i] = tokens[i][:at] + data + tokens[i][at:]
    with pytest.raises(ChainError) as info:  # a changed token never verifies
        verify_chain(tokens, keys_of(_SIGNER))
    assert info.value.reason in {"bad_record", "bad_signature", "gap", "bad_prev", "fork"}
