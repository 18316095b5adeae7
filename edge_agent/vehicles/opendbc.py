"""opendbc's DBC files read as data: from the installed distribution or a downloaded wheel.

The catalogue's maps name DBCs as ``opendbc:NAME`` (``opendbc:toyota_new_mc_pt``). NAME is
either a DBC shipped as is (``opendbc/dbc/NAME.dbc``) or one opendbc assembles from its
generator sources (``opendbc/dbc/generator/<make>/NAME.dbc`` with ``CM_ "IMPORT _x.dbc";``
lines), which the wheel ships instead of the ``*_generated.dbc`` files. We assemble those
exactly as ``opendbc/dbc/generator/generator.py`` does (``_create_dbc_content``), in our own
code: opendbc's Python is never imported (it requires Python < 3.13 and pulls pycapnp and
numpy; Raspberry Pi OS trixie ships 3.13), and no DBC file is copied into this repository.

Where the files come from, first found wins:

1. the installed ``opendbc`` distribution (``pip install msp-gateway[vehicles]``), found
   through :mod:`importlib.metadata` without importing it, if it is the pinned version;
2. the pinned wheel in the cache directory, which :func:`fetch` (``msp-agent vehicles
   fetch``) fills with ``pip download --no-deps``: ``$MSP_VEHICLES_CACHE``, else
   ``$XDG_CACHE_HOME/msp-gateway/opendbc``, else ``~/.cache/msp-gateway/opendbc``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: The opendbc release the catalogue's maps are written and tested against.
OPENDBC_VERSION = "0.3.1"
#: How a signal map names an opendbc DBC: ``dbc = "opendbc:toyota_new_mc_pt"``.
PREFIX = "opendbc:"

_INCLUDE = re.compile(r'CM_ "IMPORT (.*?)";\n')  # generator.py's include_pattern
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_DBC_DIR = "opendbc/dbc/"
_GENERATOR_DIR = "opendbc/dbc/generator/"


class VehicleError(ConfigError):
    """opendbc's DBC files cannot be found or read, or a vehicle or DBC name is unknown."""


@dataclass(frozen=True, slots=True)
class DbcSource:
    """Where opendbc's files were found: ``where`` for messages, ``read`` by archive path."""

    where: str
    version: str
    names: frozenset[str]
    read: Callable[[str], str]

    def dbc_names(self) -> list[str]:
        """Every DBC NAME this source can give: shipped ones and assembled ones."""
        out = set()
        for name in self.names:
            if not name.endswith(".dbc"):
                continue
            if name.startswith(_GENERATOR_DIR):
                base = name.rsplit("/", 1)[-1]
                if not base.startswith("_"):
                    out.add(base.removesuffix(".dbc"))
            elif name.startswith(_DBC_DIR) and name.count("/") == 2:
                out.add(name.removeprefix(_DBC_DIR).removesuffix(".dbc"))
        return sorted(out)


def cache_dir() -> Path:
    """The directory :func:`fetch` downloads the pinned wheel into."""
    env = os.environ.get("MSP_VEHICLES_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "msp-gateway" / "opendbc"


def wheel_path(directory: Path | None = None) -> Path:
    """Where the pinned wheel lies in ``directory`` (default :func:`cache_dir`)."""
    return (directory or cache_dir()) / f"opendbc-{OPENDBC_VERSION}-py3-none-any.whl"


def _installed() -> DbcSource | None:
    try:
        dist = importlib.metadata.distribution("opendbc")
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != OPENDBC_VERSION:
        log.warning(
            "opendbc %s is installed, the vehicle catalogue is written for %s: using the "
            "fetched wheel instead (msp-agent vehicles fetch)",
            dist.version,
            OPENDBC_VERSION,
        )
        return None
    files = {str(f).replace(os.sep, "/"): f for f in dist.files or ()}
    names = frozenset(n for n in files if n.startswith(_DBC_DIR))
    if not names:
        return None

    def read(name: str) -> str:
        path = Path(str(dist.locate_file(files[name])))
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VehicleError(f"{path}: cannot read opendbc's {name}: {exc}") from exc

    return DbcSource(f"installed opendbc {dist.version}", dist.version, names, read)


def _wheel(path: Path) -> DbcSource | None:
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = frozenset(n for n in archive.namelist() if n.startswith(_DBC_DIR))
    except (zipfile.BadZipFile, OSError) as exc:
        raise VehicleError(f"{path}: not a readable wheel ({exc}); run msp-agent vehicles "
                           "fetch again") from exc  # fmt: skip

    def read(name: str) -> str:
        try:
            with zipfile.ZipFile(path) as archive:
                return archive.read(name).decode("utf-8")
        except (zipfile.BadZipFile, OSError, KeyError, UnicodeDecodeError) as exc:
            raise VehicleError(f"{path}: cannot read {name}: {exc}") from exc

    return DbcSource(str(path), OPENDBC_VERSION, names, read)


def find_source(directory: Path | None = None) -> DbcSource:
    """Return where opendbc's DBC files are; raise VehicleError saying how to get them."""
    source = _installed() or _wheel(wheel_path(directory))
    if source is None:
        raise VehicleError(
            f"opendbc {OPENDBC_VERSION}'s DBC files are not available: run "
            f"`msp-agent vehicles fetch` (downloads the wheel into {directory or cache_dir()}) "
            f"or `pip install msp-gateway[vehicles]` (Python < 3.13)"
        )
    return source


def assemble(source: DbcSource, name: str) -> str:
    """The text of DBC ``name`` (no ``.dbc``), assembled as opendbc's generator.py does.

    A generator source wins over a shipped file of the same name, as in opendbc, whose
    ``*_generated.dbc`` files are what its ``opendbc/dbc/`` directory would hold.
    """
    if not _NAME.match(name):
        raise VehicleError(f"{PREFIX}{name}: not a DBC name (letters, digits, _)")
    generated = [n for n in source.names
                 if n.startswith(_GENERATOR_DIR) and n.endswith(f"/{name}.dbc")]  # fmt: skip
    if not generated:
        shipped = f"{_DBC_DIR}{name}.dbc"
        if shipped not in source.names:
            raise VehicleError(f"{PREFIX}{name}: no such DBC in {source.where}")
        return source.read(shipped)
    path = generated[0]
    directory = path.rsplit("/", 1)[0]
    text = source.read(path)
    parts = ['CM_ "AUTOGENERATED FILE, DO NOT EDIT";\n']
    for include in _INCLUDE.findall(text):
        include_path = f"{directory}/{include}"
        if include_path not in source.names:
            raise VehicleError(f"{PREFIX}{name}: {path} imports {include}, absent from "
                               f"{source.where}")  # fmt: skip
        parts.append(f'\n\nCM_ "Imported file {include} starts here";\n')
        parts.append(source.read(include_path))
    parts.append(f'\nCM_ "{name}.dbc starts here";\n')
    parts.append(_INCLUDE.sub("", text))
    return "".join(parts)


#: Lines opendbc's own parser takes and cantools' grammar refuses, and their repair: a
#: comment on a message written as a signal's without the signal (Honda), or without
#: ``BO_`` (Hyundai); a message or signal name starting with a digit (Mazda 2017's
#: ``2017_5``, ``5_SEC_DISABLE_TIMER``); a value table without its ``;`` (Mazda 2017).
_REPAIRS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'^CM_ SG_ (\d+) "', re.MULTILINE), r'CM_ BO_ \1 "'),
    (re.compile(r'^CM_ (\d+) "', re.MULTILINE), r'CM_ BO_ \1 "'),
    (re.compile(r'^(VAL_ \d+ \w+(?: -?\d+ "[^"\n]*")+)[ \t]*$', re.MULTILINE), r"\1 ;"),
)
#: Message and signal names starting with a digit, renamed wherever they stand as a word.
_DIGIT_NAMES = ((re.compile(r"^BO_ \d+ (\d\w*):", re.MULTILINE), "MSG_"),
                (re.compile(r"^ SG_ (\d\w*) ", re.MULTILINE), "SIG_"))  # fmt: skip
#: A standard frame ID above 11 bits without the extended flag (Honda's ``LKAS_HUD_A``,
#: 13274): cantools refuses the file, so the message is marked extended wherever it is named.
_BIG_ID = re.compile(r"^BO_ (\d+) ", re.MULTILINE)
_EXTENDED = 0x80000000


def _id_references(frame_id: int) -> re.Pattern[str]:
    lead = r'(^(?:BO_|CM_ BO_|CM_ SG_|VAL_|BA_ "\w+" BO_|BA_ "\w+" SG_|SG_MUL_VAL_) )'
    return re.compile(lead + str(frame_id) + r"\b", re.MULTILINE)


def for_cantools(text: str) -> tuple[str, int]:
    """``text`` with the constructs cantools cannot parse repaired; and how many were.

    Only what the grammar refuses is touched, none of it in a message a catalogue map uses:
    comments, digit-led names (prefixed), a missing ``;``, an over-long standard ID (made
    extended). Every signal layout, scale, offset and value table is left as opendbc has it.
    """
    repaired = 0
    for pattern, replacement in _REPAIRS:
        text, n = pattern.subn(replacement, text)
        repaired += n
    for pattern, prefix in _DIGIT_NAMES:
        for name in set(pattern.findall(text)):
            text, n = re.subn(rf"(?<![\w.]){name}(?!\w)", prefix + name, text)
            repaired += n
    for match in set(_BIG_ID.findall(text)):
        frame_id = int(match)
        if 0x7FF < frame_id < _EXTENDED:
            text, n = _id_references(frame_id).subn(rf"\g<1>{frame_id | _EXTENDED}", text)
            repaired += n
    return text, repaired


def dbc_text(reference: str) -> tuple[str, str]:
    """Resolve a map's ``opendbc:NAME``: a label naming where it came from, and its text
    (assembled, then repaired for cantools by :func:`for_cantools`)."""
    name = reference.removeprefix(PREFIX)
    source = find_source()
    text, repaired = for_cantools(assemble(source, name))
    if repaired:
        log.debug("%s%s: %d lines repaired for cantools", PREFIX, name, repaired)
    return f"{PREFIX}{name} ({source.where})", text


def fetch(directory: Path | None = None, *, python: str = sys.executable) -> Path:
    """Download the pinned opendbc wheel into ``directory`` (default :func:`cache_dir`).

    Runs ``pip download --no-deps`` with the interpreter ``python``; the wheel is pure
    Python, so its ``Requires-Python`` is ignored: only its data files are read. Returns the
    wheel's path; does nothing when it is already there and readable.
    """
    target = directory or cache_dir()
    wheel = wheel_path(target)
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    target.mkdir(parents=True, exist_ok=True)
    command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--ignore-requires-python", "--disable-pip-version-check", "--quiet",
               "--dest", str(target), f"opendbc=={OPENDBC_VERSION}"]  # fmt: skip
    log.info("fetching opendbc %s into %s", OPENDBC_VERSION, target)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise VehicleError(f"cannot run pip ({python}): {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise VehicleError(f"pip download opendbc=={OPENDBC_VERSION} failed: "
                           + " / ".join(detail))  # fmt: skip
    if not zipfile.is_zipfile(wheel):
        raise VehicleError(f"pip download succeeded but {wheel} is not there")
    return wheel
