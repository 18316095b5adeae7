"""``msp-agent card``: make a test card, serve it to a private pcscd from another process,
then status and login through PC/SC, as a user would."""

from __future__ import annotations

import base64
import json
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from edge_agent.card.image import load_image
from edge_agent.card.pcsc import PcscTransport
from edge_agent.card.pcscd import READER_NAME, PrivatePcscd
from edge_agent.cli import main
from msp_protocol.canonical import canonical_json

MSP_AGENT = Path(sys.executable).parent / "msp-agent"
REPO = Path(__file__).parent.parent.parent.parent


@pytest.fixture(scope="module")
def card_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cards")
    assert (
        main(
            [
                "card",
                "make-test-card",
                str(out / "card.json"),
                "--pin",
                "2468",
                "--categories",
                "普通,準中型",
                "--licence-expiry",
                "2031-05-31",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def served(card_dir: Path, pcscd: PrivatePcscd) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            str(MSP_AGENT),
            "card",
            "serve-virtual",
            str(card_dir / "card.json"),
            "--port",
            str(pcscd.port),
        ],
        stderr=subprocess.PIPE,
    )
    reader = PcscTransport(READER_NAME)
    deadline = time.monotonic() + 15
    while not reader.card_present():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "serve-virtual never inserted the card"
        time.sleep(0.05)
    yield process
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130


def test_make_test_card_writes_an_owner_only_image_and_a_test_anchor(card_dir: Path) -> None:
    image_path = card_dir / "card.json"
    assert stat.S_IMODE(image_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((card_dir / "msp-test-ca.key").stat().st_mode) == 0o600
    image = load_image(image_path)
    assert image.licence is not None and image.licence.categories == ("普通", "準中型")
    anchor = x509.load_pem_x509_certificate((card_dir / "msp-test-ca.pem").read_bytes())
    assert "NOT J-LIS" in anchor.subject.rfc4514_string()
    assert x509.load_der_x509_certificate(image.auth_certificate).issuer == anchor.subject


def test_a_second_card_reuses_the_test_ca(card_dir: Path) -> None:
    before = (card_dir / "msp-test-ca.pem").read_bytes()
    assert main(["card", "make-test-card", str(card_dir / "second.json"), "--no-licence"]) == 0
    assert (card_dir / "msp-test-ca.pem").read_bytes() == before
    assert load_image(card_dir / "second.json").licence is None


def test_an_issuer_directory_is_made_and_an_unwritable_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer = tmp_path / "new" / "ca"  # not there yet: made for the new test CA
    assert main(["card", "make-test-card", str(tmp_path / "c.json"), "--issuer", str(issuer)]) == 0
    assert stat.S_IMODE((issuer / "msp-test-ca.key").stat().st_mode) == 0o600
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert main(["card", "make-test-card", str(tmp_path / "d.json"),
                 "--issuer", str(blocked / "ca")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert str(blocked) in err and "Traceback" not in err
    assert not (tmp_path / "d.json").exists()


def test_status_json(served: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["card", "status", "--reader", READER_NAME, "--json", "--pin", "2468"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["reader"].startswith(READER_NAME) and status["card_present"] is True
    assert status["jpki_pin_tries_left"] == 3 and status["licence_pin_tries_left"] == 10
    assert status["licence_expiry"] == "2031-05-31"
    assert status["licence_categories"] == ["普通", "準中型"]
    assert "MSP TEST JPKI CA" in status["certificate_issuer"]


def test_login_json_is_a_verified_binding(
    served: subprocess.Popen[bytes], card_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "card",
            "login",
            "--reader",
            READER_NAME,
            "--pin",
            "2468",
            "--json",
            "--vin",
            "JT1234567890ABCDE",
            "--vehicle-class",
            "truck_semi_medium",
            "--trust-anchor",
            str(card_dir / "msp-test-ca.pem"),
            "--consent-request",
            str(request_file(card_dir)),
            "--consent",
            "score,driving",
        ]
    )
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    statement = body["statement"]
    assert statement["vin"] == "JT1234567890ABCDE"
    assert statement["vehicle_class"] == "truck_semi_medium"
    [consent] = statement["consents"]
    assert consent["recipient"] == "acme"
    assert consent["categories"] == ["driving", "score"]  # what was accepted, canonical order
    until = datetime.fromisoformat(consent["until"].replace("Z", "+00:00"))
    assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30)
    key = x509.load_der_x509_certificate(base64.b64decode(body["card_certificate"])).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        base64.b64decode(body["card_signature"]),
        canonical_json(statement),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


@pytest.mark.parametrize(
    ("extra", "reason", "tries_left"),
    [
        (["--pin", "0000"], "pin_wrong", 9),
        (["--pin", "2468", "--vehicle-class", "truck_large"], "licence_category", None),
    ],
)
def test_login_refusals_exit_1_with_the_reason(
    served: subprocess.Popen[bytes],
    card_dir: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    reason: str,
    tries_left: int | None,
) -> None:
    code = main(
        [
            "card",
            "login",
            "--reader",
            READER_NAME,
            "--json",
            "--trust-anchor",
            str(card_dir / "msp-test-ca.pem"),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["refused"] == reason
    assert json.loads(captured.out)["tries_left"] == tries_left
    assert f"login refused [{reason}]" in captured.err


def test_login_without_trust_anchor_is_a_usage_error(
    served: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MSP_TRUST_ANCHORS", raising=False)
    assert main(["card", "login", "--reader", READER_NAME, "--pin", "2468"]) == 2
    assert "needs at least one --trust-anchor" in capsys.readouterr().err


def request_file(directory: Path, body: str | None = None) -> Path:
    """The operator's consent request, as a gateway's configuration holds it."""
    path = directory / "consent.toml"
    path.write_text(body if body is not None else
                    '[card.consent]\nrecipient = "acme"\n'
                    'categories = ["driving", "maintenance", "score"]\ndays = 30\n')
    return path


@pytest.mark.parametrize(
    ("request_body", "answer", "message"),
    [
        (None, "driving,location", "acme did not ask for location (it asks for driving, "
                             "maintenance, score)"),
        (None, "trip", "unknown consent category 'trip' (known: driving, maintenance, score, "
                       "location, alerts, emergency, public)"),
        (None, None, "acme asks for consent: give --consent CATEGORIES (or none)"),
        ('[card.consent]\nrecipient = "acme"\ncategories = ["trips"]\n', "none",
         "consent.toml: card.consent: categories: unknown consent category 'trips'"),
        ('[card.consent]\nrecipient = "acme"\n', "none",
         "consent.toml: card.consent.categories: expected a list such as"),
        ('[consent]\nrecipient = "acme"\ncategories = ["driving"]\n', "none",
         "consent.toml: [consent]: the consent request is the [card.consent] table"),
        ("[consent\n", "none", "consent.toml: Expected ']'"),
    ],
)
def test_bad_consent_is_named(
    served: subprocess.Popen[bytes], card_dir: Path, capsys: pytest.CaptureFixture[str],
    request_body: str | None, answer: str | None, message: str,
) -> None:
    args = ["card", "login", "--reader", READER_NAME, "--pin", "2468", "--trust-anchor",
            str(card_dir / "msp-test-ca.pem"), "--consent-request",
            str(request_file(card_dir, request_body))]  # fmt: skip
    assert main(args + (["--consent", answer] if answer is not None else [])) == 2
    assert message in capsys.readouterr().err


def test_an_empty_reader(
    pcscd: PrivatePcscd, card_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_slot = f"{READER_NAME} 00 01"  # vpcd's second slot: nothing is ever served there
    assert main(["card", "status", "--reader", empty_slot, "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"reader": empty_slot, "card_present": False}
    # docs/identity.md: no card is the refusal card_removed, exit 1 like every refusal
    login = ["card", "login", "--reader", empty_slot, "--json",
             "--trust-anchor", str(card_dir / "msp-test-ca.pem")]  # fmt: skip
    assert main(login) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"refused": "card_removed", "tries_left": None,
                                        "message": f"no card in reader '{empty_slot}'"}
    assert f"login refused [card_removed]: no card in reader '{empty_slot}'" in captured.err


def test_serve_virtual_names_a_bad_image(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = subprocess.run(
        [str(MSP_AGENT), "card", "serve-virtual", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{bad}: format is not 'msp-virtual-card/1'" in result.stderr


def test_the_driver_is_asked_at_a_terminal(
    served: subprocess.Popen[bytes], card_dir: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def reply(question: str) -> str:
        asked.append(question)
        return "y" if "trouble codes" in question or "score" in question else ""

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", reply)
    args = ["card", "login", "--reader", READER_NAME, "--pin", "2468", "--json",
            "--trust-anchor", str(card_dir / "msp-test-ca.pem"),
            "--consent-request", str(request_file(card_dir))]  # fmt: skip
    assert main(args) == 0
    [consent] = json.loads(capsys.readouterr().out)["statement"]["consents"]
    assert consent["categories"] == ["maintenance", "score"]
    assert [q.split(" with ")[0] for q in asked] == [
        "Share your trips and driving events (harsh braking, speeding, ...)",
        "Share the vehicle's diagnostic trouble codes while you drive",
        "Share your portable safe-driving score, from every vehicle you drive"]


def test_the_fleet_guides_consent_example_runs_as_written(
    served: subprocess.Popen[bytes], card_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/fleet-operators.md: its [card.consent] table as /etc/msp/agent.toml, and its
    ``card login`` command with only the test card's anchor, reader and PIN added."""
    guide = (REPO / "docs" / "fleet-operators.md").read_text()
    section = guide.split("## Consent at login (edge)")[1].split("\n## ")[0]
    toml_block = section.split("```toml\n")[1].split("```")[0]
    sh_block = section.split("```sh\n")[1].split("```")[0]
    config = tmp_path / "agent.toml"
    config.write_text(toml_block)
    command = shlex.split(sh_block.replace("\\\n", " "), comments=True)
    assert command[:3] == ["msp-agent", "card", "login"]
    args = [str(card_dir / "msp-test-ca.pem") if a == "jpki-ca.pem" else
            str(config) if a == "/etc/msp/agent.toml" else a for a in command[1:]]
    assert main([*args, "--reader", READER_NAME, "--pin", "2468", "--json"]) == 0
    [consent] = json.loads(capsys.readouterr().out)["statement"]["consents"]
    # what the guide says goes into statement.consents
    assert consent["recipient"] == "rental" and consent["categories"] == ["driving", "score"]
    assert '[{"recipient": "rental", "categories": ["driving", "score"]' in " ".join(
        section.split())


def test_an_answer_without_a_request_is_refused(
    served: subprocess.Popen[bytes], card_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["card", "login", "--reader", READER_NAME, "--pin", "2468", "--trust-anchor",
            str(card_dir / "msp-test-ca.pem"), "--consent", "driving"]  # fmt: skip
    assert main(args) == 2
    assert "--consent answers a request: give --consent-request FILE" in capsys.readouterr().err
