"""Who is asking: passwords checked against their ``$7$`` hashes, signed session cookies.

Each recipient logs in with its own credential: a fleet as ``fleet.FLEET`` with the password
``msp-registry fleet add --password`` issued (the hash the broker checks too), an operator as
``operator.NAME`` (``msp-registry operator add``). Pages use a session cookie after a login
form, the API HTTP Basic (or the same cookie). A cookie is ``USER~EXPIRY~MAC``: an HMAC-SHA256
under the dashboard's session key (``web-session.key``, 0600, among the registry's secret files,
never in the database) over the user, the expiry and a digest of the user's password hash, so
a new password ends every session of the old one. Every comparison is constant-time, and an
unknown user costs the same PBKDF2 as a known one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ..pki import FLEET_PREFIX, write_private
from ..store import Store
from .errors import WebError
from .operators import OPERATOR_PREFIX, operator_hashes

SESSION_KEY: Final = "web-session.key"
COOKIE: Final = "msp_session"
#: mosquitto's ``$7$`` hashes use 101 iterations by default; refuse absurd counts (a hash
#: file is trusted, but a typo must not make every login take minutes)
_MAX_ITERATIONS: Final = 10_000_000
#: checked when the user is unknown, so that the answer takes as long as for a known one
_DUMMY_HASH: Final = "$7$101$AAAAAAAAAAAAAAAA$" + base64.b64encode(bytes(64)).decode()

Role = Literal["fleet", "operator"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A logged-in recipient: its user name, its role and its name in that role (the fleet
    id for a fleet)."""

    user: str
    role: Role
    name: str

    @property
    def home(self) -> str:
        """The page this recipient starts on."""
        return f"/fleet/{self.name}" if self.role == "fleet" else "/operator"


def check_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches a ``$7$ITERATIONS$SALT$DIGEST`` PBKDF2-SHA512 hash
    (mosquitto 2.0's form, ``cloud_sync.mosquitto.password_hash``); False for a malformed
    hash, and for a password holding a NUL (HMAC pads keys with zero bytes, so ``"pw"`` and
    ``"pw\\x00"`` would both match one hash). The digests are compared in constant time."""
    if "\x00" in password:
        return False
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not 1 <= iterations <= _MAX_ITERATIONS or not digest:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8", "surrogatepass"), salt,
                              iterations, dklen=len(digest))  # fmt: skip
    return hmac.compare_digest(got, digest)


def principal_of(user: str) -> Principal | None:
    """The principal a user name stands for (``fleet.F``, ``operator.N``), else ``None``."""
    for prefix, role in ((FLEET_PREFIX, "fleet"), (OPERATOR_PREFIX, "operator")):
        if user.startswith(prefix) and len(user) > len(prefix):
            return Principal(user, role, user[len(prefix):])  # type: ignore[arg-type]
    return None


class Credentials:
    """The password hashes of every recipient, read when needed (a new ``fleet add`` or
    ``operator add`` counts at once)."""

    def __init__(self, store: Store, secrets_dir: Path) -> None:
        self.store = store
        self.secrets_dir = secrets_dir

    def hash_of(self, principal: Principal) -> str | None:
        """The principal's password hash, ``None`` if it has none."""
        if principal.role == "fleet":
            for fleet in self.store.fleets():
                if fleet.id == principal.name:
                    return fleet.password_hash
            return None
        return operator_hashes(self.secrets_dir).get(principal.name)

    def verify(self, user: str, password: str) -> Principal | None:
        """The principal if ``password`` is ``user``'s, else ``None`` (same cost either way)."""
        principal = principal_of(user)
        hashed = self.hash_of(principal) if principal is not None else None
        ok = check_password(password, hashed or _DUMMY_HASH)
        return principal if ok and hashed is not None else None


def session_key(secrets_dir: Path) -> bytes:
    """The dashboard's cookie-signing key (``web-session.key``), made (0600) on first use."""
    path = secrets_dir / SESSION_KEY
    if not path.exists():
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, secrets.token_bytes(32).hex().encode() + b"\n")
    try:
        key = bytes.fromhex(path.read_text("ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WebError(f"{path}: cannot read the dashboard's session key: {exc}") from None
    if len(key) < 16:
        raise WebError(f"{path}: session key of {len(key)} bytes, need at least 16")
    return key


class Sessions:
    """Issues and checks session cookies (see the module docstring)."""

    def __init__(self, key: bytes, credentials: Credentials, lifetime_s: int,
                 clock: Callable[[], float]) -> None:  # fmt: skip
        self.key = key
        self.credentials = credentials
        self.lifetime_s = lifetime_s
        self.clock = clock

    def _mac(self, user: str, expiry: int, hashed: str) -> str:
        pin = hashlib.sha256(hashed.encode()).hexdigest()
        mac = hmac.new(self.key, f"{user}~{expiry}~{pin}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, principal: Principal) -> str:
        """A cookie value for ``principal`` (who just logged in)."""
        hashed = self.credentials.hash_of(principal)
        if hashed is None:
            raise WebError(f"{principal.user} has no password")
        expiry = int(self.clock()) + self.lifetime_s
        return f"{principal.user}~{expiry}~{self._mac(principal.user, expiry, hashed)}"

    def check(self, value: str) -> Principal | None:
        """The principal of a cookie that is ours, unexpired and of the user's current
        password, else ``None``."""
        user, _, rest = value.partition("~")
        expiry_text, _, mac = rest.partition("~")
        principal = principal_of(user)
        if principal is None or not expiry_text.isdigit() or int(expiry_text) < self.clock():
            return None
        hashed = self.credentials.hash_of(principal)
        if hashed is None:
            return None
        good = self._mac(user, int(expiry_text), hashed)
        return principal if hmac.compare_digest(good.encode(), mac.encode()) else None


def basic_credentials(header: str) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic`` header, ``None`` if it is none."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def cookie_of(cookies: Mapping[str, str]) -> str | None:
    """The session cookie's value among a request's cookies."""
    return cookies.get(COOKIE)
