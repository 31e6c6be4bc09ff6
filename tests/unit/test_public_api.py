"""The public API is curated: a sorted `__all__`, and every exception under one root."""

from __future__ import annotations

import inspect

import tbledger
import tbledger.errors


def test_all_is_sorted_and_complete() -> None:
    assert list(tbledger.__all__) == sorted(tbledger.__all__)
    for name in tbledger.__all__:
        assert hasattr(tbledger, name), name


def test_every_exported_exception_has_the_root() -> None:
    exceptions = [
        obj
        for module in (tbledger, tbledger.errors)
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    ]
    assert exceptions
    for exc in exceptions:
        assert issubclass(exc, tbledger.TbledgerError), exc


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("tbledger").joinpath("py.typed").is_file()
