"""The documentation pages work offline: ``/docs`` and ``/redoc`` load only the service's files.

Each page is fetched without a key (the documentation is public, as it was), every URL it names
is local, no ``http://`` or ``https://`` address appears anywhere in it, and every asset it names
is served, without a key, byte for byte the vendored file, with a cache lifetime its versioned
path allows. The vendored versions are the ones the package says, and the package data of the
wheel takes every vendored file.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tbledger.api.docs import DOCS_ASSETS, DOCS_PATHS, REDOC_VERSION, SWAGGER_UI_VERSION
from tests.api.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tbledger"
VENDOR = PACKAGE / "api" / "static" / "vendor"
# Where the pages name a URL: an attribute (src, href, ReDoc's spec-url) or Swagger UI's `url:`.
_URL = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")


def _urls(page: str) -> list[str]:
    return [a or b for a, b in _URL.findall(page)]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_page_names_only_local_assets_and_each_is_served(api: Api, path: str) -> None:
    r = await api.http.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "http://" not in page and "https://" not in page, page
    urls = _urls(page)
    assets = [u for u in urls if u != "/openapi.json"]
    assert "/openapi.json" in urls
    assert assets, page
    for url in assets:
        assert url.startswith("/docs/static/"), url
        served = await api.http.get(url)
        assert served.status_code == 200, (url, served.text[:200])
        name, media_type = DOCS_ASSETS[url]
        assert served.content == (VENDOR / name).read_bytes(), url
        assert served.headers["content-type"] == media_type
        assert "immutable" in served.headers["cache-control"]
    spec = await api.http.get("/openapi.json")
    assert spec.status_code == 200


async def test_swagger_ui_calls_no_validator_and_the_oauth_page_is_local(api: Api) -> None:
    page = (await api.http.get("/docs")).text
    assert '"validatorUrl": null' in page
    assert "swagger-ui-dist-" + SWAGGER_UI_VERSION in page
    assert "redoc-" + REDOC_VERSION in (await api.http.get("/redoc")).text
    redirect = await api.http.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "http://" not in redirect.text and "https://" not in redirect.text


async def test_only_the_documented_assets_are_public(api: Api) -> None:
    # The guard admits exact paths: a neighbour of an asset needs a key like any other route.
    for path in ("/docs/static/", "/docs/static/secret.js", "/docs/static/../openapi.json"):
        r = await api.http.get(path)
        assert r.status_code == 401, (path, r.text)
    assert {"/docs", "/redoc", "/docs/oauth2-redirect"} <= DOCS_PATHS
    # The pages stay out of the OpenAPI document, which lists the API's routes only.
    spec = (await api.http.get("/openapi.json")).json()
    assert not any(p.startswith(("/docs", "/redoc")) for p in spec["paths"])


def test_the_vendored_versions_are_the_ones_the_package_names() -> None:
    swagger = json.loads((VENDOR / "swagger-ui-dist" / "package.json").read_text())
    redoc = json.loads((VENDOR / "redoc" / "package.json").read_text())
    assert (swagger["name"], swagger["version"]) == ("swagger-ui-dist", SWAGGER_UI_VERSION)
    assert (redoc["name"], redoc["version"]) == ("redoc", REDOC_VERSION)
    readme = (VENDOR / "README.md").read_text()
    assert f"| swagger-ui-dist | {SWAGGER_UI_VERSION} |" in readme
    assert f"| redoc | {REDOC_VERSION} |" in readme
    for folder in ("swagger-ui-dist", "redoc"):
        assert (VENDOR / folder / "LICENSE").is_file()


def test_the_wheel_takes_every_vendored_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tbledger"]
    packaged = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    vendored = {path for path in VENDOR.rglob("*") if path.is_file()}
    assert vendored - packaged == set()
    assert {VENDOR / name for name, _ in DOCS_ASSETS.values()} <= vendored
