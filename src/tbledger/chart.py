"""The chart of accounts: which ledgers, account codes and transfer codes exist, and what they mean.

TigerBeetle knows a ledger and a code only as numbers (a u32 and a u16). The chart gives each one
a name, and gives each ledger its asset scale (the decimal places of its minor unit, which the
engine does not store) and kind; tbledger uses it to validate requests and to convert amounts at
the edges (`tbledger.amounts`). A chart is immutable and validated as a whole when built:

* ledger numbers are u32, code numbers u16, never 0 (TigerBeetle refuses 0 for both);
* numbers are unique, and names are unique ignoring case (lookups ignore case), within each of
  the three lists; names are letters, digits and underscores starting with a letter, so a name
  can never be mistaken for a number;
* an asset scale is in 0..38 (`amounts.ASSET_SCALE_MAX`);
* an obligation ledger (an anchor's authorized, not yet fulfilled purchases) names the ledger it
  settles in, which must be in the chart, must not be an obligation ledger itself, and must have
  the same asset scale, so settling moves the same integer on both ledgers; other kinds of
  ledger name none.

`Chart.default()` is the specification's chart, packaged as ``tbledger/charts/default.toml``; its
comments say why each asset scale was chosen. A deployment loads its own with
`Chart.from_toml`, which is strict: unknown keys, wrong types and missing keys are refused with
`ChartError` naming the entry (``ledgers[3] (BTC): ...``), so a typo never passes silently.
Lookups raise `UnknownLedgerError` / `UnknownCodeError` listing what the chart has.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from importlib.resources import files
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import tigerbeetle as tb

from tbledger.amounts import (
    ASSET_SCALE_MAX,
    format_ledger_amount,
    ledger_from_minor,
    ledger_to_minor,
)
from tbledger.balances import AccountType, NormalSide, default_flags, normal_side
from tbledger.errors import ChartError, UnknownCodeError, UnknownLedgerError
from tbledger.limits import U16_MAX, U32_MAX

__all__ = [
    "CHART_DESCRIPTION_CHARS_MAX",
    "CHART_TEXT_BYTES_MAX",
    "DEFAULT_SETTLEMENT_LEDGER",
    "AccountCode",
    "Chart",
    "Ledger",
    "LedgerKind",
    "TransferCode",
]

# Why: a chart is a few dozen entries, and even ten thousand fit in well under 1 MiB; the bound
# keeps a wrongly named file (a log, a database dump) from being read whole into memory.
CHART_TEXT_BYTES_MAX: Final = 1 << 20

# Why: a description is a sentence or two for people reading the chart; the bound keeps a pasted
# document out of listings and error messages.
CHART_DESCRIPTION_CHARS_MAX: Final = 1000

# The ledger an obligation ledger settles in when its TOML entry does not say (the specification's
# obligations are all denominated in US dollars).
DEFAULT_SETTLEMENT_LEDGER: Final = "USD"

# Letters, digits and underscores, starting with a letter: a name is never all digits, so a
# lookup key "1" can only mean the number 1.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_DIGITS = re.compile(r"[0-9]{1,10}")

# An unknown-key error lists at most this many of the chart's entries.
_LISTED_MAX: Final = 20

_DEFAULT_RESOURCE: Final = "charts/default.toml"


class LedgerKind(StrEnum):
    FIAT = "fiat"
    CRYPTO = "crypto"
    STABLECOIN = "stablecoin"
    TOKEN = "token"
    # An anchor's obligations (authorized purchases not yet fulfilled), settled in another ledger.
    OBLIGATION = "obligation"


@dataclass(frozen=True, slots=True)
class Ledger:
    """A ledger: its engine number, name, asset scale, kind, and for an obligation ledger the
    number of the ledger it settles in."""

    code: int
    name: str
    asset_scale: int
    kind: LedgerKind
    description: str = ""
    settles_in: int | None = None

    def __post_init__(self) -> None:
        what = f"ledger {self.name!r}"
        _check_number(what, "code", self.code, U32_MAX)
        _check_name(what, self.name)
        what = f"ledger {self.name} ({self.code})"
        _check_scale(what, self.asset_scale)
        object.__setattr__(self, "kind", _enum(what, "kind", LedgerKind, self.kind))
        _check_description(what, self.description)
        if self.kind is LedgerKind.OBLIGATION:
            if self.settles_in is None:
                raise ChartError(f"{what}: an obligation ledger must name the ledger it settles in")
            _check_number(what, "settles_in", self.settles_in, U32_MAX)
            if self.settles_in == self.code:
                raise ChartError(f"{what}: an obligation ledger cannot settle in itself")
        elif self.settles_in is not None:
            raise ChartError(
                f"{what}: only an obligation ledger settles in another ledger, not a {self.kind}"
            )

    def to_minor(self, value: str | Decimal | int, *, allow_zero: bool = True) -> int:
        """`amounts.ledger_to_minor` for this ledger: ``usd.to_minor("12.50") == 1250``."""
        return ledger_to_minor(value, self, allow_zero=allow_zero)

    def from_minor(self, minor: int) -> Decimal:
        """`amounts.ledger_from_minor` for this ledger: ``Decimal("12.50")`` from 1250 cents."""
        return ledger_from_minor(minor, self)

    def format_amount(self, minor: int) -> str:
        """`amounts.format_ledger_amount` for this ledger: ``usd.format_amount(5) == "0.05"``."""
        return format_ledger_amount(minor, self)


@dataclass(frozen=True, slots=True)
class AccountCode:
    """An account code: its engine number, name, and the account type that gives it a normal side
    and default flags (`tbledger.balances`)."""

    code: int
    name: str
    account_type: AccountType
    description: str = ""

    def __post_init__(self) -> None:
        what = f"account code {self.name!r}"
        _check_number(what, "code", self.code, U16_MAX)
        _check_name(what, self.name)
        what = f"account code {self.name} ({self.code})"
        account_type = _enum(what, "account_type", AccountType, self.account_type)
        object.__setattr__(self, "account_type", account_type)
        _check_description(what, self.description)

    @property
    def normal_side(self) -> NormalSide:
        return normal_side(self.account_type)

    @property
    def default_flags(self) -> tb.AccountFlags:
        return default_flags(self.account_type)


@dataclass(frozen=True, slots=True)
class TransferCode:
    """A transfer code: its engine number and name.

    `customer` marks the codes owner keys may use on the transfers they make themselves (a
    payment between customers); every other code is the platform's, used by its flows and by
    admin keys (DESIGN §9)."""

    code: int
    name: str
    description: str = ""
    customer: bool = False

    def __post_init__(self) -> None:
        what = f"transfer code {self.name!r}"
        if not isinstance(self.customer, bool):
            raise ChartError(f"{what}: customer must be true or false")
        _check_number(what, "code", self.code, U16_MAX)
        _check_name(what, self.name)
        _check_description(f"transfer code {self.name} ({self.code})", self.description)


# One of the three kinds of chart entry; each has a `code` and a `name`.
_E = TypeVar("_E", Ledger, AccountCode, TransferCode)


@dataclass(frozen=True, slots=True)
class Chart:
    """An immutable, validated chart of accounts with lookups by number and by name."""

    ledgers: tuple[Ledger, ...]
    account_codes: tuple[AccountCode, ...]
    transfer_codes: tuple[TransferCode, ...]
    _ledger_index: _Index[Ledger] = field(init=False, repr=False, compare=False)
    _account_index: _Index[AccountCode] = field(init=False, repr=False, compare=False)
    _transfer_index: _Index[TransferCode] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Tuples whatever the caller passed, so the chart stays immutable and hashable.
        for attr in ("ledgers", "account_codes", "transfer_codes"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        ledger_index = _Index.build("ledgers", "ledger", Ledger, self.ledgers)
        object.__setattr__(self, "_ledger_index", ledger_index)
        account_index = _Index.build(
            "account_codes", "account code", AccountCode, self.account_codes
        )
        object.__setattr__(self, "_account_index", account_index)
        transfer_index = _Index.build(
            "transfer_codes", "transfer code", TransferCode, self.transfer_codes
        )
        object.__setattr__(self, "_transfer_index", transfer_index)
        for entry in self.ledgers:
            if entry.settles_in is not None:
                _check_settlement(entry, ledger_index.by_code.get(entry.settles_in))

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Chart:
        """The specification's chart of accounts (``tbledger/charts/default.toml``)."""
        return _default_chart()

    @classmethod
    def from_toml(cls, source: str | bytes | os.PathLike[str]) -> Chart:
        """Load a chart from TOML: a path (`os.PathLike`, e.g. `pathlib.Path`) is read as a file;
        `str` and `bytes` are the TOML text itself. Anything invalid raises `ChartError`."""
        if isinstance(source, os.PathLike):
            label = os.fspath(source)
            text = _read_text(label)
        elif isinstance(source, bytes):
            label = "<bytes>"
            text = _decode(label, source)
        elif isinstance(source, str):
            label = "<string>"
            text = source
            if len(text.encode("utf-8", "surrogatepass")) > CHART_TEXT_BYTES_MAX:
                raise ChartError(f"{label}: a chart must be at most {CHART_TEXT_BYTES_MAX} bytes")
        else:
            raise ChartError(
                "a chart source is a path (os.PathLike) or TOML text (str or bytes), "
                f"not {type(source).__name__}"
            )
        return _parse_chart(label, text)

    # -- lookups -----------------------------------------------------------------------------------

    def ledger(self, key: int | str) -> Ledger:
        """The ledger with this number (an int, or a string of digits) or name (ignoring case)."""
        found = self._ledger_index.find(key)
        if found is None:
            raise UnknownLedgerError(self._ledger_index.unknown(key))
        return found

    def account_code(self, key: int | str) -> AccountCode:
        """The account code with this number or name (ignoring case)."""
        found = self._account_index.find(key)
        if found is None:
            raise UnknownCodeError(self._account_index.unknown(key))
        return found

    def account_code_for(self, account_type: AccountType | str) -> AccountCode:
        """The first account code of `account_type` (`UnknownCodeError` if the chart has none)."""
        for entry in self.account_codes:
            if entry.account_type == account_type:
                return entry
        raise UnknownCodeError(f"the chart has no account code of type {account_type}")

    def transfer_code(self, key: int | str) -> TransferCode:
        """The transfer code with this number or name (ignoring case)."""
        found = self._transfer_index.find(key)
        if found is None:
            raise UnknownCodeError(self._transfer_index.unknown(key))
        return found

    def settlement_ledger(self, key: int | str) -> Ledger | None:
        """The ledger that ledger `key` settles in, or None if `key` is not an obligation ledger."""
        entry = self.ledger(key)
        if entry.settles_in is None:
            return None
        return self.ledger(entry.settles_in)


@dataclass(frozen=True, slots=True)
class _Index(Generic[_E]):
    """One list's lookups by number and by case-folded name, built once when the chart is."""

    title: str  # "ledgers", for messages about the list
    noun: str  # "ledger", for messages about one entry
    entries: tuple[_E, ...]
    by_code: Mapping[int, _E]
    by_name: Mapping[str, _E]

    @classmethod
    def build(cls, title: str, noun: str, kind: type[_E], entries: Iterable[_E]) -> _Index[_E]:
        listed = tuple(entries)
        if not listed:
            raise ChartError(f"{title}: a chart needs at least one {noun}")
        by_code: dict[int, _E] = {}
        by_name: dict[str, _E] = {}
        for position, entry in enumerate(listed):
            if not isinstance(entry, kind):
                raise ChartError(
                    f"{title}[{position}]: expected a {kind.__name__}, not {type(entry).__name__}"
                )
            other = by_code.setdefault(entry.code, entry)
            if other is not entry:
                raise ChartError(
                    f"{title}: {entry.name} and {other.name} both have number {entry.code}"
                )
            other = by_name.setdefault(entry.name.casefold(), entry)
            if other is not entry:
                raise ChartError(
                    f"{title}: {entry.name} ({entry.code}) and {other.name} ({other.code}) have "
                    "the same name ignoring case"
                )
        return cls(title, noun, listed, MappingProxyType(by_code), MappingProxyType(by_name))

    def find(self, key: object) -> _E | None:
        # bool before int: True is a bug at the caller, not ledger 1.
        if isinstance(key, bool):
            return None
        if isinstance(key, int):
            return self.by_code.get(key)
        if isinstance(key, str):
            if _DIGITS.fullmatch(key):
                return self.by_code.get(int(key))
            return self.by_name.get(key.casefold())
        return None

    def unknown(self, key: object) -> str:
        if isinstance(key, bool) or not isinstance(key, int | str):
            return (
                f"a {self.noun} is named by its number (int) or its name (str), "
                f"not {type(key).__name__}"
            )
        shown = [f"{entry.name} ({entry.code})" for entry in self.entries[:_LISTED_MAX]]
        more = len(self.entries) - len(shown)
        listing = ", ".join(shown) + (f" and {more} more" if more else "")
        if isinstance(key, int):
            what = f"number {key}" if key.bit_length() <= 64 else "with that number"
        else:
            what = repr(key) if len(key) <= 64 else f"{key[:61]!r}..."
        return f"the chart has no {self.noun} {what}; it has {listing}"


@functools.cache
def _default_chart() -> Chart:
    # Charts are immutable, so one shared instance is safe; the file is read once per process.
    resource = files("tbledger").joinpath(_DEFAULT_RESOURCE)
    return _parse_chart(f"tbledger/{_DEFAULT_RESOURCE}", resource.read_text(encoding="utf-8"))


# -- validation helpers ---------------------------------------------------------------------------


def _check_number(what: str, key: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChartError(f"{what}: {key} must be an integer, not {type(value).__name__}")
    if not 1 <= value <= maximum:
        raise ChartError(f"{what}: {key} must be in 1..{maximum}, got {value}")


def _check_name(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise ChartError(f"{what}: name must be a string, not {type(value).__name__}")
    if not _NAME.fullmatch(value):
        raise ChartError(
            f"{what}: a name is 1 to 64 letters, digits and underscores, starting with a letter"
        )


def _check_scale(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChartError(f"{what}: asset_scale must be an integer, not {type(value).__name__}")
    if not 0 <= value <= ASSET_SCALE_MAX:
        raise ChartError(f"{what}: asset_scale must be in 0..{ASSET_SCALE_MAX}, got {value}")


def _check_description(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise ChartError(f"{what}: description must be a string, not {type(value).__name__}")
    if len(value) > CHART_DESCRIPTION_CHARS_MAX:
        raise ChartError(
            f"{what}: description must be at most {CHART_DESCRIPTION_CHARS_MAX} characters, "
            f"got {len(value)}"
        )


_K = TypeVar("_K", LedgerKind, AccountType)


def _enum(what: str, key: str, enum: type[_K], value: object) -> _K:
    if isinstance(value, enum):
        return value
    allowed = ", ".join(member.value for member in enum)
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise ChartError(f"{what}: {key} must be one of {allowed}; got {value!r}")


def _check_settlement(obligation: Ledger, target: Ledger | None) -> None:
    what = f"ledger {obligation.name} ({obligation.code})"
    if target is None:
        raise ChartError(
            f"{what}: settles_in names ledger {obligation.settles_in}, which is not in the chart"
        )
    if target.kind is LedgerKind.OBLIGATION:
        raise ChartError(
            f"{what}: settles in {target.name}, which is an obligation ledger itself; "
            "obligations settle in money"
        )
    if target.asset_scale != obligation.asset_scale:
        raise ChartError(
            f"{what}: asset_scale {obligation.asset_scale} differs from {target.asset_scale} of "
            f"{target.name}, the ledger it settles in; they must be equal so settling moves the "
            "same integer on both"
        )


# -- TOML -----------------------------------------------------------------------------------------

_TOP_KEYS: Final = ("ledgers", "account_codes", "transfer_codes")
_LEDGER_REQUIRED: Final = ("code", "name", "kind", "asset_scale")
_LEDGER_OPTIONAL: Final = ("description", "settles_in")
_ACCOUNT_REQUIRED: Final = ("code", "name", "account_type")
_TRANSFER_REQUIRED: Final = ("code", "name")
_DESCRIPTION_ONLY: Final = ("description",)
_TRANSFER_OPTIONAL: Final = ("description", "customer")


def _read_text(label: str) -> str:
    try:
        with open(label, "rb") as file:
            data = file.read(CHART_TEXT_BYTES_MAX + 1)
    except OSError as exc:
        raise ChartError(f"{label}: cannot read the chart file: {exc.strerror or exc}") from exc
    return _decode(label, data)


def _decode(label: str, data: bytes) -> str:
    if len(data) > CHART_TEXT_BYTES_MAX:
        raise ChartError(f"{label}: a chart must be at most {CHART_TEXT_BYTES_MAX} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChartError(f"{label}: a chart must be UTF-8 text: {exc}") from exc


def _parse_chart(label: str, text: str) -> Chart:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = ""
        if "\n" not in text and "=" not in text:
            hint = " (a str is TOML text; to load a file, pass a pathlib.Path)"
        raise ChartError(f"{label}: not valid TOML: {exc}{hint}") from exc
    _check_keys(label, document, required=_TOP_KEYS, optional=())
    raw_ledgers = _tables(label, document, "ledgers")
    raw_accounts = _tables(label, document, "account_codes")
    raw_transfers = _tables(label, document, "transfer_codes")

    # Obligation ledgers may name the ledger they settle in by name; numbers are resolved against
    # the file's own entries before any Ledger is built.
    # The first of two ledgers with the same name wins here; the chart refuses the pair anyway.
    names: dict[str, int] = {}
    for raw in raw_ledgers:
        if isinstance(raw.get("name"), str) and isinstance(raw.get("code"), int):
            names.setdefault(raw["name"].casefold(), raw["code"])
    ledgers = []
    for position, raw in enumerate(raw_ledgers):
        where, at = _where(label, "ledgers", position, raw)
        _check_keys(where, raw, required=_LEDGER_REQUIRED, optional=_LEDGER_OPTIONAL)
        settles_in = _settles_in(where, raw, names)
        fields = {key: raw[key] for key in (*_LEDGER_REQUIRED, "description") if key in raw}
        ledgers.append(_build(at, Ledger, **fields, settles_in=settles_in))
    accounts = []
    for position, raw in enumerate(raw_accounts):
        where, at = _where(label, "account_codes", position, raw)
        _check_keys(where, raw, required=_ACCOUNT_REQUIRED, optional=_DESCRIPTION_ONLY)
        accounts.append(_build(at, AccountCode, **raw))
    transfers = []
    for position, raw in enumerate(raw_transfers):
        where, at = _where(label, "transfer_codes", position, raw)
        _check_keys(where, raw, required=_TRANSFER_REQUIRED, optional=_TRANSFER_OPTIONAL)
        transfers.append(_build(at, TransferCode, **raw))
    try:
        return Chart(tuple(ledgers), tuple(accounts), tuple(transfers))
    except ChartError as exc:
        raise ChartError(f"{label}: {exc}") from exc


def _tables(label: str, document: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = document[key]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ChartError(f"{label}: {key} must be an array of tables ([[{key}]] entries)")
    if not value:
        raise ChartError(f"{label}: {key} must have at least one entry")
    return value


def _where(label: str, title: str, position: int, raw: Mapping[str, Any]) -> tuple[str, str]:
    """Where an entry is, for messages: with its name if it has a sensible one, and without (for
    errors from the entry's own validation, which name it themselves)."""
    at = f"{label}: {title}[{position}]"
    name = raw.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        return f"{at} ({name})", at
    return at, at


def _check_keys(
    where: str, raw: Mapping[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    unknown = sorted(set(raw) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join((*required, *optional))
        raise ChartError(f"{where}: unknown key {unknown[0]!r}; the keys are {allowed}")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ChartError(f"{where}: missing key {missing[0]!r}")


def _settles_in(where: str, raw: Mapping[str, Any], names: Mapping[str, int]) -> int | None:
    if raw.get("kind") != LedgerKind.OBLIGATION.value:
        if "settles_in" in raw:
            raise ChartError(f"{where}: only an obligation ledger has settles_in")
        return None
    reference = raw.get("settles_in", DEFAULT_SETTLEMENT_LEDGER)
    if isinstance(reference, bool) or not isinstance(reference, int | str):
        raise ChartError(
            f"{where}: settles_in must be a ledger's name or number, not {type(reference).__name__}"
        )
    if isinstance(reference, int):
        return reference
    code = names.get(reference.casefold())
    if code is None:
        defaulted = "" if "settles_in" in raw else " (the default)"
        raise ChartError(
            f"{where}: settles_in is {reference!r}{defaulted}, but the chart has no ledger of "
            "that name"
        )
    return code


def _build(where: str, entry_type: type[_E], /, **fields: Any) -> _E:
    try:
        return entry_type(**fields)
    except ChartError as exc:
        raise ChartError(f"{where}: {exc}") from exc
