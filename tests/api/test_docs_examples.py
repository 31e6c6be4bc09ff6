"""The worked examples of docs/api.md run, in order, against the app, and answer as documented.

How docs/api.md writes an example (and how this file reads it):

* a fenced block marked ``http`` is a request: ``METHOD /path`` on the first line, then
  ``Name: value`` headers, then a blank line and the JSON body (if any);
* the next line that starts with ``→`` gives the status (``→ 201 Created``);
* the next fenced block marked ``json`` is the documented response body, one marked ``text``
  a server-sent event stream (``id:``/``event:``/``data:`` fields, events separated by blank
  lines), or one marked ``csv`` a CSV body (compared row by row, cell by cell).

Placeholders, in braces:

* ``{ADMIN_KEY}`` is the fixture's admin key; ``{KEY:alice}`` an owner key bound to ``alice``
  (minted on first use, through ``api.owner``);
* ``{name}`` is a value captured from a response: where a documented response has the whole
  string ``"{name}"`` and ``name`` is not bound yet, the actual value there is bound to it; once
  bound, ``{name}`` is replaced by that value wherever it appears (paths, headers, bodies and
  documented responses, where it must then match);
* ``"..."`` in a documented response matches any value.

Matching: a documented object matches when each of its keys is present and matches (extra actual
keys are ignored); a documented list matches element by element and must have the same length,
unless its last element is ``"..."`` (then the actual list may be longer). Documented events of a
stream must appear in the actual stream in that order, other events in between allowed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.api import Api

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"

ANY = "..."
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
_STATUS = re.compile(r"^→ (\d{3})\b", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{(ADMIN_KEY|KEY:[A-Za-z0-9_-]+|[a-z][a-z0-9_]*)\}")


@dataclass
class Example:
    line: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: str | None
    status: int
    kind: str  # "json", "text" or "csv"
    response: str

    def __str__(self) -> str:
        return f"docs/api.md line {self.line}: {self.method} {self.path}"


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def parse_examples(text: str) -> list[Example]:
    """Every ``http`` block with its status line and the response block that follows it."""
    fences = list(_FENCE.finditer(text))
    examples = []
    for index, fence in enumerate(fences):
        if fence.group(1) != "http":
            continue
        line = _line_of(text, fence.start())
        assert index + 1 < len(fences), f"line {line}: a request with no response block"
        answer = fences[index + 1]
        assert answer.group(1) in ("json", "text", "csv"), (
            f"line {line}: no json/text/csv response block"
        )
        status = _STATUS.search(text, fence.end(), answer.start())
        assert status is not None, f"line {line}: no '→ <status>' line after the request"
        head, _, body = fence.group(2).partition("\n\n")
        request_line, *header_lines = head.strip().splitlines()
        method, path = request_line.split()[:2]
        headers = []
        for header in header_lines:
            name, sep, value = header.partition(":")
            assert sep, f"line {line}: bad header line {header!r}"
            headers.append((name.strip(), value.strip()))
        examples.append(
            Example(
                line=line,
                method=method,
                path=path,
                headers=headers,
                body=body.strip() or None,
                status=int(status.group(1)),
                kind=answer.group(1),
                response=answer.group(2),
            )
        )
    return examples


@dataclass
class Runner:
    api: Api
    bound: dict[str, str] = field(default_factory=dict)

    async def fill(self, text: str, where: Example) -> str:
        """`text` with every placeholder replaced; each must be a key or already bound."""
        out = []
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            name = match.group(1)
            if name == "ADMIN_KEY":
                value = self.api.admin_key
            elif name.startswith("KEY:"):
                header = await self.api.owner(name.removeprefix("KEY:"))
                value = header["Authorization"].removeprefix("Bearer ")
            else:
                assert name in self.bound, f"{where}: {{{name}}} is used before it is captured"
                value = self.bound[name]
            out.append(text[position : match.start()])
            out.append(value)
            position = match.end()
        out.append(text[position:])
        return "".join(out)

    def matches(self, documented: Any, actual: Any, bound: dict[str, str], at: str) -> str | None:
        """None if `actual` matches `documented` (binding captures into `bound`), else why not."""
        if documented == ANY:
            return None
        if isinstance(documented, dict):
            if not isinstance(actual, dict):
                return f"{at}: expected an object, got {actual!r}"
            for key, value in documented.items():
                if key not in actual:
                    return f"{at}: no field {key!r} in {sorted(actual)}"
                why = self.matches(value, actual[key], bound, f"{at}.{key}")
                if why is not None:
                    return why
            return None
        if isinstance(documented, list):
            if not isinstance(actual, list):
                return f"{at}: expected a list, got {actual!r}"
            open_ended = bool(documented) and documented[-1] == ANY
            items = documented[:-1] if open_ended else documented
            if len(actual) < len(items) or (not open_ended and len(actual) != len(items)):
                return f"{at}: expected {len(items)} elements, got {len(actual)}: {actual!r}"
            for index, item in enumerate(items):
                why = self.matches(item, actual[index], bound, f"{at}[{index}]")
                if why is not None:
                    return why
            return None
        if isinstance(documented, str) and _PLACEHOLDER.search(documented):
            whole = _PLACEHOLDER.fullmatch(documented)
            if whole is not None and whole.group(1) not in bound:
                if not isinstance(actual, str):
                    return f"{at}: expected a string to capture as {documented}, got {actual!r}"
                bound[whole.group(1)] = actual
                return None
            expected = _PLACEHOLDER.sub(lambda m: bound.get(m.group(1), m.group(0)), documented)
            if _PLACEHOLDER.search(expected):
                return f"{at}: {documented} uses a placeholder that is not captured yet"
            documented = expected
        if documented != actual:
            return f"{at}: documented {documented!r}, got {actual!r}"
        return None

    def check(self, documented: Any, actual: Any, where: Example) -> None:
        bound = dict(self.bound)
        why = self.matches(documented, actual, bound, "body")
        assert why is None, f"{where}: {why}\nfull response: {json.dumps(actual, indent=2)}"
        self.bound = bound

    def check_stream(self, documented: list[Any], actual: list[Any], where: Example) -> None:
        position = 0
        for event in documented:
            while position < len(actual):
                bound = dict(self.bound)
                found = self.matches(event, actual[position], bound, "event") is None
                position += 1
                if found:
                    self.bound = bound
                    break
            else:
                raise AssertionError(f"{where}: no event matching {event!r} in order")

    async def run(self, example: Example) -> None:
        path = await self.fill(example.path, example)
        headers = {name: await self.fill(value, example) for name, value in example.headers}
        body = None if example.body is None else await self.fill(example.body, example)
        if body is not None:
            json.loads(body)  # a documented body is valid JSON
        response = await self.api.http.request(
            example.method,
            path,
            headers=headers,
            content=None if body is None else body.encode(),
        )
        assert response.status_code == example.status, (
            f"{example}: documented {example.status}, got {response.status_code}: {response.text}"
        )
        if example.kind == "json":
            self.check(json.loads(example.response), response.json(), example)
        elif example.kind == "csv":
            assert response.headers["content-type"].startswith("text/csv"), example
            self.check(_rows(example.response), _rows(response.text), example)
        else:
            self.check_stream(parse_stream(example.response), parse_stream(response.text), example)


def _rows(text: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text)) if row]


def parse_stream(text: str) -> list[dict[str, Any]]:
    """Server-sent events as ``{"id", "event", "data"}`` objects (data parsed as JSON)."""
    events = []
    for block in re.split(r"\n\s*\n", text.strip()):
        event: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            event[name.strip()] = value.strip()
        if "data" in event:
            event["data"] = json.loads(event["data"])
            events.append(event)
    return events


def test_the_guide_has_examples_of_every_area() -> None:
    examples = parse_examples(API_DOC.read_text(encoding="utf-8"))
    paths = {e.path.split("?")[0] for e in examples}
    for path in (
        "/v1/accounts",
        "/v1/flows/deposit",
        "/v1/transfers",
        "/v1/transfers/pending",
        "/v1/transfers/{hold}/post",
        "/v1/transfers/{hold2}/void",
        "/v1/transfers/batch",
        "/v1/transfers/{hold}",
        "/v1/events",
        "/v1/accounts/{alice}/history",
        "/v1/accounts/{alice}/balance",
        "/v1/accounts/{alice}/activity",
        "/v1/accounts/{alice}/statement",
    ):
        assert path in paths, f"docs/api.md has no example of {path}"
    statuses = {e.status for e in examples}
    assert {200, 201, 401, 403, 404, 409} <= statuses


def test_placeholders_and_matching() -> None:
    runner = Runner(api=None)  # type: ignore[arg-type]
    bound: dict[str, str] = {}
    documented = {"id": "{x}", "items": [{"a": 1}, ANY], "when": ANY}
    actual = {"id": "0x01", "items": [{"a": 1, "b": 2}, {"a": 3}], "when": "now", "more": True}
    assert runner.matches(documented, actual, bound, "body") is None
    assert bound == {"x": "0x01"}
    assert runner.matches({"id": "{x}"}, {"id": "0x02"}, bound, "body") is not None
    assert runner.matches({"m": "no account {x}"}, {"m": "no account 0x01"}, bound, "b") is None
    assert runner.matches([1], [1, 2], bound, "body") is not None
    assert runner.matches({"k": 1}, {}, bound, "body") is not None


async def test_the_worked_examples_answer_as_documented(api: Api) -> None:
    examples = parse_examples(API_DOC.read_text(encoding="utf-8"))
    assert examples, "docs/api.md has no worked examples"
    runner = Runner(api)
    for example in examples:
        await runner.run(example)
