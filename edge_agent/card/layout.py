"""The My Number Card's applications, files and PIN rules, as public sources describe them.

Sources are in ../shared/notes/identity.md and docs/identity.md. Facts marked ASSUMED there
(the licence categories' TLV tag) are ours until checked against the police specification.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ATR of the My Number Card (OpenSC card-jpki.c ``jpki_atrs``).
MY_NUMBER_CARD_ATR = bytes.fromhex("3BE000FF8131FE4514")

# --- JPKI AP (公的個人認証) ------------------------------------------------------------
JPKI_AID = bytes.fromhex("D392F000260100000001")
JPKI_EF_TOKEN = 0x0006  # "JPKIAPICCTOKEN2" on a My Number Card
JPKI_EF_AUTH_CERT = 0x000A  # user-authentication certificate, readable without PIN
JPKI_EF_AUTH_CA_CERT = 0x000B  # its issuing CA certificate
JPKI_EF_AUTH_KEY = 0x0017  # user-authentication private key (RSA-2048)
JPKI_EF_AUTH_PIN = 0x0018  # 4-digit PIN, 3 tries
JPKI_AUTH_PIN_TRIES = 3
JPKI_TOKEN = b"JPKIAPICCTOKEN2"
#: VERIFY P2 of the JPKI PIN: the PIN EF selected just before.
JPKI_VERIFY_P2 = 0x80

# --- Licence AP (マイナ免許証, 免許AP) --------------------------------------------------
LICENCE_AID = bytes.fromhex("A0000002310600000000000000000000")
LICENCE_EF_PIN_FLAG = 0x001A  # WEF01: PIN-set flag, tag C1
LICENCE_EF_PIN = 0x0006  # IEF01: 4-digit PIN, 10 tries
LICENCE_EF_DATA = 0x001B  # WEF02: licence data; expiry is tag C5
LICENCE_EF_SIGNATURE = 0x001C  # WEF03: issuer signature (format not public)
LICENCE_PIN_TRIES = 10
#: VERIFY P2 of the licence PIN: 0x80 | short EF identifier of IEF01.
LICENCE_VERIFY_P2 = 0x80 | LICENCE_EF_PIN
LICENCE_TAG_EXPIRY = 0xC5  # era digit + YYMMDD, JIS X 0201 digits (confirmed, DLC_Starter)
LICENCE_TAG_CATEGORY = 0xD0  # ASSUMED: one per licence category, UTF-8 name (ours)

# --- Applications that hold or derive from the 12-digit My Number: never select them -----
TEXT_AP_AID = bytes.fromhex("D3921000310001010408")  # 券面事項入力補助AP (EF 0001 = My Number)
FACE_AP_AID = bytes.fromhex("D3921000310001010402")  # 券面AP (its PIN-A is the My Number)
FORBIDDEN_AIDS: frozenset[bytes] = frozenset({TEXT_AP_AID, FACE_AP_AID})

PIN_DIGITS = 4


@dataclass(frozen=True, slots=True)
class PinRule:
    """How a PIN looks and how many wrong tries lock it."""

    label: str
    digits: int
    max_tries: int

    def check_format(self, pin: str) -> bool:
        """True when ``pin`` is exactly ``digits`` ASCII digits."""
        return len(pin) == self.digits and pin.isascii() and pin.isdigit()


JPKI_AUTH_PIN_RULE = PinRule("JPKI user-authentication PIN", PIN_DIGITS, JPKI_AUTH_PIN_TRIES)
LICENCE_PIN_RULE = PinRule("driving-licence PIN", PIN_DIGITS, LICENCE_PIN_TRIES)
