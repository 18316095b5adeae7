"""Card images: round trip, owner-only file mode, and errors that name the field."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from edge_agent.card.errors import CardImageError
from edge_agent.card.image import CardImage, load_image, make_test_card, save_image
from edge_agent.card.issuer import TestIssuer


def test_round_trip_and_mode(image: CardImage, tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    save_image(image, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_image(path)
    assert loaded.auth_certificate == image.auth_certificate
    assert loaded.auth_key.private_numbers() == image.auth_key.private_numbers()
    assert (loaded.licence, loaded.jpki_pin, loaded.licence_tries_left) == (
        image.licence,
        image.jpki_pin,
        image.licence_tries_left,
    )


def _broken(image: CardImage, tmp_path: Path, edit: str) -> Path:
    path = tmp_path / "card.json"
    save_image(image, path)
    doc = json.loads(path.read_text())
    section, key, value = edit.split(":", 2)
    doc[section][key] = json.loads(value)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("jpki:pin:1234", r"jpki\.pin: expected str"),
        ('jpki:auth_certificate:"%%%"', "jpki: key or certificate does not decode"),
        ("jpki:tries_left:true", r"jpki\.tries_left: expected int"),
        ('licence:expiry:"31/01/2030"', r"licence\.expiry: not YYYY-MM-DD"),
        ("licence:categories:[1]", r"licence\.categories: expected a list of strings"),
    ],
)
def test_bad_fields_are_named(image: CardImage, tmp_path: Path, edit: str, message: str) -> None:
    path = _broken(image, tmp_path, edit)
    with pytest.raises(CardImageError, match=message) as caught:
        load_image(path)
    assert str(path) in str(caught.value)


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CardImageError, match="not a JSON card image"):
        load_image(bad)
    with pytest.raises(CardImageError, match="cannot read"):
        load_image(tmp_path / "missing.json")
    bad.write_text('{"format": "other"}')
    with pytest.raises(CardImageError, match="format is not"):
        load_image(bad)


def test_make_test_card_checks_pin_format(issuer: TestIssuer) -> None:
    with pytest.raises(CardImageError, match="4 digits"):
        make_test_card(issuer, pin="12")


def test_test_issuer_is_named_as_a_test_ca(issuer: TestIssuer) -> None:
    assert "TEST" in issuer.certificate.subject.rfc4514_string()
    assert "NOT J-LIS" in issuer.certificate.subject.rfc4514_string()
