"""The chart of accounts: the default chart is the specification's, lookups work by number and by
name, and a deployment's own chart is validated strictly, with errors naming the entry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import tigerbeetle as tb

import tbledger.errors
from tbledger.balances import ACCOUNT_TYPE_CODES, AccountType, NormalSide
from tbledger.chart import (
    CHART_TEXT_BYTES_MAX,
    AccountCode,
    Chart,
    Ledger,
    LedgerKind,
    TransferCode,
)
from tbledger.errors import (
    ChartError,
    ConfigurationError,
    UnknownCodeError,
    UnknownLedgerError,
    ValidationError,
)

# The specification's numbers, copied from it verbatim.
SPEC_LEDGERS = {
    "USD": 1,
    "EUR": 2,
    "GBP": 3,
    "ETH": 100,
    "USDC": 101,
    "USDT": 102,
    "BTC": 103,
    "SOVR": 999,
    "sFIAT": 998,
    "GROCERY_OBLIGATION": 1001,
    "UTILITY_OBLIGATION": 1002,
    "FUEL_OBLIGATION": 1003,
}
SPEC_ACCOUNT_CODES = {
    "USER": 1,
    "MERCHANT": 2,
    "TREASURY": 3,
    "ESCROW": 4,
    "FEE_POOL": 5,
    "ANCHOR": 6,
    "SYSTEM_BUFFER": 7,
}
SPEC_TRANSFER_CODES = {
    "DEPOSIT": 1,
    "WITHDRAWAL": 2,
    "PAYMENT": 3,
    "REFUND": 4,
    "FEE": 5,
    "ANCHOR_AUTHORIZATION": 10,
    "ANCHOR_FULFILLMENT": 11,
    "ANCHOR_EXPIRY": 12,
    "ESCROW_LOCK": 20,
    "ESCROW_RELEASE": 21,
    "ESCROW_VOID": 22,
    "SETTLEMENT": 30,
    "SETTLEMENT_REVERSAL": 31,
}
# tbledger's own additions: the counterparty of freeze/close transfers and their transfer code.
CONTROL_ACCOUNT_CODE = 8
CONTROL_TRANSFER_CODE = 65535


# -- the default chart ----------------------------------------------------------------------------


def test_default_ledgers_are_exactly_the_specifications() -> None:
    chart = Chart.default()
    assert {ledger.name: ledger.code for ledger in chart.ledgers} == SPEC_LEDGERS


def test_default_account_codes_are_the_specifications_plus_control() -> None:
    chart = Chart.default()
    assert {code.name: code.code for code in chart.account_codes} == {
        **SPEC_ACCOUNT_CODES,
        "CONTROL": CONTROL_ACCOUNT_CODE,
    }


def test_default_transfer_codes_are_the_specifications_plus_control() -> None:
    chart = Chart.default()
    assert {code.name: code.code for code in chart.transfer_codes} == {
        **SPEC_TRANSFER_CODES,
        "CONTROL": CONTROL_TRANSFER_CODE,
    }


def test_default_account_codes_agree_with_the_account_types_in_balances() -> None:
    chart = Chart.default()
    assert {code.account_type: code.code for code in chart.account_codes} == ACCOUNT_TYPE_CODES
    for code in chart.account_codes:
        assert code.name.lower() == code.account_type.value


def test_control_transfer_code_agrees_with_the_service() -> None:
    import tbledger.service

    assert Chart.default().transfer_code("CONTROL").code == tbledger.service.CONTROL_TRANSFER_CODE


@pytest.mark.parametrize(
    ("name", "scale", "kind"),
    [
        ("USD", 2, LedgerKind.FIAT),
        ("EUR", 2, LedgerKind.FIAT),
        ("GBP", 2, LedgerKind.FIAT),
        ("ETH", 18, LedgerKind.CRYPTO),
        ("BTC", 8, LedgerKind.CRYPTO),
        ("USDC", 6, LedgerKind.STABLECOIN),
        ("USDT", 6, LedgerKind.STABLECOIN),
        ("SOVR", 6, LedgerKind.TOKEN),
        ("sFIAT", 2, LedgerKind.TOKEN),
        ("GROCERY_OBLIGATION", 2, LedgerKind.OBLIGATION),
        ("UTILITY_OBLIGATION", 2, LedgerKind.OBLIGATION),
        ("FUEL_OBLIGATION", 2, LedgerKind.OBLIGATION),
    ],
)
def test_default_asset_scales_and_kinds(name: str, scale: int, kind: LedgerKind) -> None:
    ledger = Chart.default().ledger(name)
    assert (ledger.asset_scale, ledger.kind) == (scale, kind)
    assert ledger.description


def test_default_obligation_ledgers_settle_in_usd_and_others_settle_in_nothing() -> None:
    chart = Chart.default()
    usd = chart.ledger("USD")
    for ledger in chart.ledgers:
        if ledger.kind is LedgerKind.OBLIGATION:
            assert ledger.settles_in == usd.code
            assert chart.settlement_ledger(ledger.code) == usd
        else:
            assert ledger.settles_in is None
            assert chart.settlement_ledger(ledger.code) is None


def test_default_is_one_shared_immutable_instance() -> None:
    chart = Chart.default()
    assert Chart.default() is chart
    with pytest.raises(dataclasses.FrozenInstanceError):
        chart.ledgers = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        chart.ledger("USD").asset_scale = 3  # type: ignore[misc]
    assert isinstance(chart.ledgers, tuple)
    assert hash(chart) == hash(Chart.from_toml(_default_text()))


def test_the_packaged_file_loads_the_same_chart_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "chart.toml"
    path.write_text(_default_text(), encoding="utf-8")
    assert Chart.from_toml(path) == Chart.default()
    assert Chart.from_toml(_default_text().encode()) == Chart.default()


# -- lookups --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [103, "103", "BTC", "btc", "Btc"])
def test_ledgers_are_found_by_number_or_by_name_ignoring_case(key: int | str) -> None:
    assert Chart.default().ledger(key).name == "BTC"


def test_names_keep_their_spelling_but_match_in_any_case() -> None:
    chart = Chart.default()
    assert chart.ledger("SFIAT").name == "sFIAT"
    assert chart.ledger("sfiat").code == 998


@pytest.mark.parametrize(("key", "code"), [(1, 1), ("user", 1), ("FEE_POOL", 5), ("control", 8)])
def test_account_codes_are_found_by_number_or_name(key: int | str, code: int) -> None:
    assert Chart.default().account_code(key).code == code


@pytest.mark.parametrize(
    ("key", "code"), [(31, 31), ("settlement_reversal", 31), ("ANCHOR_EXPIRY", 12)]
)
def test_transfer_codes_are_found_by_number_or_name(key: int | str, code: int) -> None:
    assert Chart.default().transfer_code(key).code == code


def test_account_codes_carry_their_normal_side_and_default_flags() -> None:
    chart = Chart.default()
    user, treasury = chart.account_code("USER"), chart.account_code("TREASURY")
    assert user.account_type is AccountType.USER
    assert user.normal_side is NormalSide.CREDIT
    assert user.default_flags & tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    assert treasury.normal_side is NormalSide.DEBIT
    assert treasury.default_flags & tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS


@pytest.mark.parametrize("key", [0, 4, 1004, "XYZ", "", "1 ", 2**200, "x" * 10_000])
def test_an_unknown_ledger_is_refused_listing_the_ledgers(key: int | str) -> None:
    with pytest.raises(UnknownLedgerError, match=r"it has USD \(1\), EUR \(2\), .*BTC \(103\)"):
        Chart.default().ledger(key)


@pytest.mark.parametrize("key", [True, False, 1.0, None, b"USD"])
def test_a_ledger_key_of_the_wrong_type_is_refused(key: object) -> None:
    with pytest.raises(UnknownLedgerError, match=r"number \(int\) or its name \(str\), not "):
        Chart.default().ledger(key)  # type: ignore[arg-type]


def test_unknown_codes_are_refused_listing_the_codes() -> None:
    chart = Chart.default()
    with pytest.raises(UnknownCodeError, match=r"no account code 'VAULT'; it has USER \(1\)"):
        chart.account_code("VAULT")
    with pytest.raises(UnknownCodeError, match=r"no transfer code number 6; it has DEPOSIT \(1\)"):
        chart.transfer_code(6)


def test_lookup_errors_are_validation_errors_and_lookup_errors() -> None:
    for error in (UnknownLedgerError, UnknownCodeError):
        assert issubclass(error, ValidationError)
        assert issubclass(error, LookupError)
        assert issubclass(error, tbledger.errors.TbledgerError)
    assert issubclass(ChartError, ConfigurationError)


def test_long_listings_are_cut_short() -> None:
    chart = Chart(
        tuple(Ledger(n, f"L{n}", 2, LedgerKind.FIAT) for n in range(1, 101)),
        (AccountCode(1, "USER", AccountType.USER),),
        (TransferCode(1, "PAYMENT"),),
    )
    with pytest.raises(UnknownLedgerError, match=r"L20 \(20\) and 80 more$"):
        chart.ledger(500)


# -- building charts in Python --------------------------------------------------------------------


def _usd() -> Ledger:
    return Ledger(1, "USD", 2, LedgerKind.FIAT)


def _chart(*ledgers: Ledger) -> Chart:
    return Chart(
        ledgers, (AccountCode(1, "USER", AccountType.USER),), (TransferCode(1, "PAYMENT"),)
    )


def test_kinds_and_account_types_may_be_given_as_their_strings() -> None:
    assert Ledger(1, "USD", 2, "fiat").kind is LedgerKind.FIAT  # type: ignore[arg-type]
    assert AccountCode(1, "U", "user").account_type is AccountType.USER  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"code": 0}, "code must be in 1..4294967295, got 0"),
        ({"code": 2**32}, "code must be in 1..4294967295"),
        ({"code": -1}, "code must be in 1..4294967295"),
        ({"code": True}, "code must be an integer, not bool"),
        ({"code": "1"}, "code must be an integer, not str"),
        ({"name": ""}, "a name is 1 to 64 letters"),
        ({"name": "1USD"}, "a name is 1 to 64 letters"),
        ({"name": "US D"}, "a name is 1 to 64 letters"),
        ({"name": "U" * 65}, "a name is 1 to 64 letters"),
        ({"asset_scale": 39}, "asset_scale must be in 0..38, got 39"),
        ({"asset_scale": -1}, "asset_scale must be in 0..38"),
        ({"asset_scale": 2.0}, "asset_scale must be an integer, not float"),
        ({"kind": "currency"}, "kind must be one of fiat, crypto, stablecoin, token, obligation"),
        ({"description": "x" * 1001}, "description must be at most 1000 characters"),
        ({"settles_in": 2}, "only an obligation ledger settles in another ledger, not a fiat"),
        ({"kind": LedgerKind.OBLIGATION}, "an obligation ledger must name the ledger it settles"),
        ({"kind": LedgerKind.OBLIGATION, "settles_in": 1}, "cannot settle in itself"),
    ],
)
def test_a_ledger_is_validated_when_built(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"code": 1, "name": "USD", "asset_scale": 2, "kind": "fiat"}
    with pytest.raises(ChartError, match=_escape(message)):
        Ledger(**{**base, **fields})  # type: ignore[arg-type]


def test_codes_are_u16_and_not_zero() -> None:
    with pytest.raises(ChartError, match=r"code must be in 1\.\.65535, got 65536"):
        TransferCode(65536, "BIG")
    with pytest.raises(ChartError, match=r"code must be in 1\.\.65535, got 0"):
        AccountCode(0, "ZERO", AccountType.USER)
    with pytest.raises(ChartError, match="account_type must be one of user, merchant"):
        AccountCode(1, "VAULT", "vault")  # type: ignore[arg-type]
    assert TransferCode(65535, "MAX").code == 65535


def test_numbers_and_names_are_unique_in_each_list() -> None:
    with pytest.raises(ChartError, match="ledgers: DOLLAR and USD both have number 1"):
        _chart(_usd(), Ledger(1, "DOLLAR", 2, LedgerKind.FIAT))
    with pytest.raises(ChartError, match=r"USD \(2\) and usd \(1\) have the same name ignoring"):
        _chart(Ledger(1, "usd", 2, LedgerKind.FIAT), Ledger(2, "USD", 2, LedgerKind.FIAT))
    with pytest.raises(ChartError, match="transfer_codes: B and A both have number 1"):
        Chart(
            (_usd(),),
            (AccountCode(1, "USER", AccountType.USER),),
            (TransferCode(1, "A"), TransferCode(1, "B")),
        )


def test_numbers_and_names_may_repeat_across_lists() -> None:
    # CONTROL is both an account code and a transfer code in the default chart.
    chart = Chart(
        (Ledger(1, "CONTROL", 2, LedgerKind.FIAT),),
        (AccountCode(1, "CONTROL", AccountType.CONTROL),),
        (TransferCode(1, "CONTROL"),),
    )
    assert chart.ledger("control").code == chart.transfer_code("control").code == 1


def test_every_list_needs_an_entry() -> None:
    with pytest.raises(ChartError, match="account_codes: a chart needs at least one account code"):
        Chart((_usd(),), (), (TransferCode(1, "PAYMENT"),))


def test_entries_must_be_of_their_lists_type() -> None:
    with pytest.raises(ChartError, match=r"ledgers\[0\]: expected a Ledger, not TransferCode"):
        Chart((TransferCode(1, "X"),), (), ())  # type: ignore[arg-type]


def test_obligations_settle_in_money_of_the_same_scale() -> None:
    obligation = Ledger(1001, "FOOD", 2, LedgerKind.OBLIGATION, settles_in=1)
    assert _chart(_usd(), obligation).settlement_ledger("food") == _usd()
    with pytest.raises(ChartError, match="settles_in names ledger 1, which is not in the chart"):
        _chart(obligation)
    with pytest.raises(ChartError, match="asset_scale 2 differs from 6 of USDC"):
        _chart(Ledger(1, "USDC", 6, LedgerKind.STABLECOIN), obligation)
    nested = Ledger(1002, "NESTED", 2, LedgerKind.OBLIGATION, settles_in=1001)
    with pytest.raises(ChartError, match="which is an obligation ledger itself"):
        _chart(_usd(), obligation, nested)


# -- loading a deployment's chart from TOML -------------------------------------------------------

MINIMAL = """
[[ledgers]]
code = 1
name = "USD"
kind = "fiat"
asset_scale = 2

[[ledgers]]
code = 7001
name = "RENT_OBLIGATION"
kind = "obligation"
asset_scale = 2

[[account_codes]]
code = 1
name = "USER"
account_type = "user"

[[transfer_codes]]
code = 1
name = "PAYMENT"
"""


def test_a_minimal_chart_loads_and_obligations_settle_in_usd_by_default() -> None:
    chart = Chart.from_toml(MINIMAL)
    rent = chart.ledger("rent_obligation")
    assert rent.settles_in == 1
    assert rent.description == ""
    assert chart.account_code(1).description == ""


def test_settles_in_may_name_a_ledger_by_name_or_number() -> None:
    by_name = MINIMAL.replace('kind = "obligation"', 'kind = "obligation"\nsettles_in = "eur"')
    by_name = by_name.replace(
        "[[account_codes]]",
        '[[ledgers]]\ncode = 2\nname = "EUR"\nkind = "fiat"\nasset_scale = 2\n\n[[account_codes]]',
    )
    settlement = Chart.from_toml(by_name).settlement_ledger("RENT_OBLIGATION")
    assert settlement is not None
    assert settlement.name == "EUR"
    by_number = by_name.replace('settles_in = "eur"', "settles_in = 2")
    assert Chart.from_toml(by_number).ledger(7001).settles_in == 2


_EUR_AS_1 = '[[ledgers]]\ncode = 1\nname = "EUR"\nkind = "fiat"\nasset_scale = 2\n\n'


def _edit(old: str, new: str, text: str = MINIMAL) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[ledgers]\n", r"<string>: not valid TOML"),
        ("", r"<string>: missing key 'ledgers'"),
        (
            "version = 2\n" + MINIMAL,
            r"<string>: unknown key 'version'; the keys are ledgers, account_",
        ),
        ("ledgers = 1\n" + MINIMAL, r"not valid TOML"),
        (
            MINIMAL.replace("[[ledgers]]", "[[ledger]]"),
            r"<string>: unknown key 'ledger'",
        ),
        (
            _edit('name = "USD"', 'name = "USD"\nscale = 2'),
            r"<string>: ledgers\[0\] \(USD\): unknown key 'scale'; the keys are code, name, kind",
        ),
        (
            _edit('name = "PAYMENT"', 'name = "PAYMENT"\naccount_type = "user"'),
            r"transfer_codes\[0\] \(PAYMENT\): unknown key 'account_type'",
        ),
        (
            _edit("asset_scale = 2\n", ""),
            r"ledgers\[0\] \(USD\): missing key 'asset_scale'",
        ),
        (
            _edit("code = 1\n", "code = 0\n"),
            r"<string>: ledgers\[0\]: ledger 'USD': code must be in 1..4294967295, got 0",
        ),
        (
            _edit("code = 1\n", "code = 4294967296\n"),
            r"ledgers\[0\]: ledger 'USD': code must be in 1..4294967295",
        ),
        (
            _edit("code = 1\n", "code = true\n"),
            r"ledgers\[0\]: ledger 'USD': code must be an integer, not bool",
        ),
        (
            _edit("code = 1\n", 'code = "1"\n'),
            r"ledgers\[0\]: ledger 'USD': code must be an integer, not str",
        ),
        (
            _edit("asset_scale = 2\n", "asset_scale = 39\n"),
            r"ledgers\[0\]: ledger USD \(1\): asset_scale must be in 0..38, got 39",
        ),
        (
            _edit('kind = "fiat"', 'kind = "FIAT"'),
            r"ledgers\[0\]: ledger USD \(1\): kind must be one of fiat, crypto",
        ),
        (
            _edit('name = "USD"', 'name = "U S D"'),
            r"ledgers\[0\]: ledger 'U S D': a name is 1 to 64 letters",
        ),
        (
            _edit('name = "RENT_OBLIGATION"', 'name = "usd"'),
            r"<string>: ledgers: usd \(7001\) and USD \(1\) have the same name ignoring case",
        ),
        (
            _edit("[[account_codes]]", _EUR_AS_1 + "[[account_codes]]"),
            r"<string>: ledgers: EUR and USD both have number 1",
        ),
        (
            _edit('kind = "fiat"', 'kind = "fiat"\nsettles_in = "USD"'),
            r"ledgers\[0\] \(USD\): only an obligation ledger has settles_in",
        ),
        (
            _edit('kind = "obligation"', 'kind = "obligation"\nsettles_in = "JPY"'),
            r"ledgers\[1\] \(RENT_OBLIGATION\): settles_in is 'JPY', but the chart has no ledger",
        ),
        (
            _edit('kind = "obligation"', 'kind = "obligation"\nsettles_in = 42'),
            r"ledger RENT_OBLIGATION \(7001\): settles_in names ledger 42, which is not in the",
        ),
        (
            _edit('kind = "obligation"', 'kind = "obligation"\nsettles_in = 1.0'),
            r"settles_in must be a ledger's name or number, not float",
        ),
        (
            _edit('name = "USD"', 'name = "DOLLAR"'),
            r"ledgers\[1\] \(RENT_OBLIGATION\): settles_in is 'USD' \(the default\), but",
        ),
        (
            _edit("asset_scale = 2\n\n[[account_codes]]", "asset_scale = 6\n\n[[account_codes]]"),
            r"RENT_OBLIGATION \(7001\): asset_scale 6 differs from 2 of USD",
        ),
        (
            _edit('account_type = "user"', 'account_type = "wallet"'),
            r"account_codes\[0\]: account code USER \(1\): account_type must be one of user,",
        ),
        (
            _edit('name = "PAYMENT"', 'name = "PAYMENT"\ndescription = 5'),
            r"transfer_codes\[0\]: transfer code PAYMENT \(1\): description must be a string",
        ),
        (
            _edit('code = 1\nname = "PAYMENT"', 'code = 65536\nname = "PAYMENT"'),
            r"transfer_codes\[0\]: transfer code 'PAYMENT': code must be in 1..65535, got 65536",
        ),
        (
            "transfer_codes = []\n" + MINIMAL.partition("[[transfer_codes]]")[0],
            r"<string>: transfer_codes must have at least one entry",
        ),
        (
            "transfer_codes = [1, 2]\n" + MINIMAL.partition("[[transfer_codes]]")[0],
            r"<string>: transfer_codes must be an array of tables",
        ),
    ],
)
def test_bad_charts_are_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ChartError, match=message):
        Chart.from_toml(text)


def test_a_path_given_as_a_string_gets_a_hint() -> None:
    with pytest.raises(ChartError, match=r"to load a file, pass a pathlib\.Path"):
        Chart.from_toml("/etc/tbledger/chart.toml")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ChartError, match=r"missing\.toml: cannot read the chart file"):
        Chart.from_toml(missing)
    bad = tmp_path / "bad.toml"
    bad.write_text(_edit("asset_scale = 2\n", "asset_scale = 40\n"), encoding="utf-8")
    with pytest.raises(ChartError, match=r"bad\.toml: ledgers\[0\]: ledger USD \(1\): asset_scale"):
        Chart.from_toml(bad)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"# caf\xe9\n" + MINIMAL.encode())
    with pytest.raises(ChartError, match="must be UTF-8"):
        Chart.from_toml(latin1)


def test_chart_size_is_limited(tmp_path: Path) -> None:
    huge = MINIMAL + "#" * CHART_TEXT_BYTES_MAX
    with pytest.raises(ChartError, match="at most 1048576 bytes"):
        Chart.from_toml(huge)
    path = tmp_path / "huge.toml"
    path.write_text(huge, encoding="utf-8")
    with pytest.raises(ChartError, match="at most 1048576 bytes"):
        Chart.from_toml(path)


def test_other_source_types_are_refused() -> None:
    with pytest.raises(ChartError, match="not int"):
        Chart.from_toml(5)  # type: ignore[arg-type]


def test_the_default_file_is_installed_as_package_data() -> None:
    from importlib.resources import files

    assert files("tbledger").joinpath("charts/default.toml").is_file()


def _default_text() -> str:
    from importlib.resources import files

    return files("tbledger").joinpath("charts/default.toml").read_text(encoding="utf-8")


def _escape(message: str) -> str:
    import re

    return re.escape(message)
