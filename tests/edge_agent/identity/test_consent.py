"""The operator's consent request and the driver's answer, as the login puts it into the
statement the card signs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.identity.binding import Consent
from edge_agent.identity.consent import DESCRIPTIONS, ConsentRequest, answer
from msp_protocol.consent import CATEGORIES

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_every_category_is_explained_to_the_driver() -> None:
    assert set(DESCRIPTIONS) == set(CATEGORIES)


def test_only_what_the_driver_accepts_is_signed() -> None:
    request = ConsentRequest("acme", ("driving", "maintenance", "score", "location"), 7)
    assert request.accept(answer("score,driving"), NOW) == (
        Consent("acme", ("driving", "score"), "2026-12-03T09:00:00.000Z"),)
    assert request.accept(answer("none"), NOW) == ()
    assert request.accept(answer(""), NOW) == ()


def test_the_terminal_asks_one_question_per_requested_category() -> None:
    request = ConsentRequest("rental-co", ("score", "driving"), 30)
    asked: list[str] = []

    def confirm(question: str) -> bool:
        asked.append(question)
        return "score" in question

    accepted = request.ask(confirm)
    assert accepted == ("score",)
    assert asked == [
        f"Share {DESCRIPTIONS['driving']} with rental-co for 30 days?",
        f"Share {DESCRIPTIONS['score']} with rental-co for 30 days?",
    ]


REPO = Path(__file__).parent.parent.parent.parent


def test_load_reads_the_card_consent_table(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[card.consent]\nrecipient = "acme"\ncategories = ["location", "driving"]\n')
    assert ConsentRequest.load(path) == ConsentRequest("acme", ("location", "driving"), 90.0)


def test_the_example_configuration_is_a_consent_request() -> None:
    """``card login --consent-request /etc/msp/agent.toml`` reads the file ``msp-agent run``
    reads, and its recipient is the fleet the install guide enrols the gateway in."""
    request = ConsentRequest.load(REPO / "examples" / "agent.toml")
    assert request == ConsentRequest("acme", ("driving", "maintenance", "score"), 90.0)
    guide = (REPO / "docs" / "install-raspberry-pi.md").read_text()
    fleets = set(re.findall(r"msp-registry enroll .*--fleet (\S+)", guide))
    assert fleets == {request.recipient}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [card.consent] table"),
        ('[consent]\nrecipient = "a"\ncategories = []\n',
         "[consent]: the consent request is the [card.consent] table"),
        ('[card.consent]\nrecipient = "a/b"\ncategories = []\n', "recipient: 'a/b' is not"),
        ('[card.consent]\nrecipient = "a"\ncategories = []\ndays = 0\n',
         "card.consent.days: expected a positive number"),
        ('[card.consent]\nrecipient = "a"\ncategories = []\ndays = 4000\n',
         "card.consent.days: expected at most 3660"),
        ('[card.consent]\nrecipient = "a"\ncategories = []\nwho = 1\n',
         "card.consent.who: unknown key"),
        ('[card.consent]\nrecipient = 7\ncategories = []\n', "card.consent.recipient: "),
        ('[card.consent]\nrecipient = "a"\ncategories = ["trips"]\n',
         "unknown consent category 'trips'"),
    ],
)
def test_load_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"agent\.toml: .*") as info:
        ConsentRequest.load(path)
    assert message in str(info.value)


def test_an_unreadable_request_names_its_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        ConsentRequest.load(tmp_path / "missing.toml")
