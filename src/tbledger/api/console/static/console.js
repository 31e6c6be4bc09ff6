/*
 * tbledger console: the signed-in key, and the widgets htmx's fragments leave on a page.
 *
 * The key lives in this tab's sessionStorage only (closing the tab forgets it) and goes as the
 * API's usual "Authorization: Bearer" header on every request the console makes: htmx's fragment
 * requests (added in htmx:configRequest), the balance chart's reads of /v1/accounts/{id}/history
 * and the live feed's stream of /v1/events. Pages themselves are empty shells: without a key a
 * page sends nothing and goes to the sign-in page.
 *
 * No eval, no inline script or style: the page's Content-Security-Policy allows neither, and
 * everything a fragment shows is built by the server (escaped) or here with textContent.
 */
(function () {
  "use strict";

  var STORAGE_KEY = "tbledger.console.key";
  // The chart reads at most this many pages of history (each up to 1000 points).
  var HISTORY_PAGES_MAX = 20;
  var HISTORY_PAGE_ROWS = 1000;
  // The live feed keeps this many rows on the page.
  var FEED_ROWS_MAX = 200;
  var RECONNECT_MS = 2000;

  function root() {
    return document.body.dataset.root || "";
  }

  function storedKey() {
    try {
      return window.sessionStorage.getItem(STORAGE_KEY);
    } catch (err) {
      return null;
    }
  }

  function forgetKey() {
    try {
      window.sessionStorage.removeItem(STORAGE_KEY);
    } catch (err) {
      /* storage refused: nothing was kept */
    }
  }

  function authHeaders(extra) {
    var headers = { Authorization: "Bearer " + storedKey() };
    for (var name in extra || {}) headers[name] = extra[name];
    return headers;
  }

  function signInUrl() {
    var here = location.pathname + location.search;
    return root() + "/console/sign-in?next=" + encodeURIComponent(here);
  }

  function toSignIn() {
    location.replace(signInUrl());
  }

  // Where to go after signing in: a console page of this service, never anywhere else.
  function safeNext(text) {
    var fallback = root() + "/console";
    if (!text) return fallback;
    try {
      var url = new URL(text, location.origin);
      var path = url.pathname;
      if (
        url.origin === location.origin &&
        (path === root() + "/console" || path.indexOf(root() + "/console/") === 0) &&
        path.indexOf(root() + "/console/sign-in") !== 0
      ) {
        return path + url.search;
      }
    } catch (err) {
      /* not a URL: the console's front page */
    }
    return fallback;
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function link(href, text, title) {
    var node = element("a", text);
    node.href = href;
    if (title) node.title = title;
    return node;
  }

  function shortId(text) {
    if (!text) return "";
    var digits = text.replace(/^0x/, "").replace(/^0+/, "") || "0";
    return digits.length > 10 ? "…" + digits.slice(-10) : digits;
  }

  // The message of an API error answer ({"error": {"message": ...}}), or its status line.
  function messageOf(status, text) {
    try {
      var body = JSON.parse(text);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (err) {
      /* not JSON */
    }
    return "the service answered " + status;
  }

  function showError(target, message) {
    if (!target) return;
    target.replaceChildren(element("p", message, "error"));
  }

  // -- htmx: the key on every request, errors shown where the answer would have gone -----------

  document.addEventListener("htmx:configRequest", function (event) {
    var key = storedKey();
    if (!key) {
      event.preventDefault();
      toSignIn();
      return;
    }
    event.detail.headers["Authorization"] = "Bearer " + key;
    // A filter left blank is no filter: the routes refuse an empty value rather than guess.
    var data = event.detail.formData;
    if (data && event.detail.verb === "get") {
      Array.from(new Set(data.keys())).forEach(function (name) {
        if (data.getAll(name).every(function (value) { return value === ""; })) data.delete(name);
      });
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 401) {
      forgetKey();
      toSignIn();
      return;
    }
    showError(event.detail.target, messageOf(xhr.status, xhr.responseText));
  });

  document.addEventListener("htmx:sendError", function (event) {
    showError(event.detail.target, "the service did not answer; is it running?");
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    setUp(event.detail.target);
  });

  // -- what a fragment brings ------------------------------------------------------------------

  function setUp(scope) {
    var who = scope.querySelector("[data-scope]");
    if (who) document.body.dataset.scope = who.dataset.scope;
    var chart = scope.querySelector("#balance-chart");
    if (chart) drawChart(chart);
    var feed = scope.querySelector("#event-feed");
    if (feed) follow(feed);
    tick();
  }

  // -- holds: a countdown to each expiry -------------------------------------------------------

  function remaining(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000);
    var days = Math.floor(s / 86400);
    var hours = Math.floor((s % 86400) / 3600);
    var minutes = Math.floor((s % 3600) / 60);
    var seconds = s % 60;
    var parts = [];
    if (days) parts.push(days + "d");
    if (days || hours) parts.push(hours + "h");
    parts.push(String(minutes).padStart(2, "0") + "m");
    parts.push(String(seconds).padStart(2, "0") + "s");
    return "in " + parts.join(" ");
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-expires-at-ms]").forEach(function (node) {
      var left = Number(node.dataset.expiresAtMs) - now;
      node.textContent = remaining(left);
      node.classList.toggle("expired", left <= 0);
    });
  }

  // -- the balance chart: the engine's history, as GET /v1/accounts/{id}/history answers it ----

  function seconds(timestampNs) {
    // Engine timestamps are nanoseconds (past 2^53): BigInt to milliseconds, then a Number.
    return Number(BigInt(timestampNs) / 1000000n) / 1000;
  }

  async function history(accountId) {
    var points = [];
    var cursor = null;
    for (var page = 0; page < HISTORY_PAGES_MAX; page++) {
      var query = new URLSearchParams({ limit: String(HISTORY_PAGE_ROWS) });
      if (cursor) query.set("cursor", cursor);
      var url = root() + "/v1/accounts/" + encodeURIComponent(accountId) + "/history?" + query;
      var answer = await fetch(url, { headers: authHeaders(), cache: "no-store" });
      if (answer.status === 401) {
        forgetKey();
        toSignIn();
        throw new Error("signed out");
      }
      if (!answer.ok) throw new Error(messageOf(answer.status, await answer.text()));
      var body = await answer.json();
      points.push.apply(points, body.points);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    return points;
  }

  async function drawChart(box) {
    if (box.dataset.state) return;
    box.dataset.state = "loading";
    var points;
    try {
      points = await history(box.dataset.accountId);
    } catch (err) {
      box.dataset.state = "error";
      showError(box, "No chart: " + err.message);
      return;
    }
    // What was drawn, exactly as the API said it: [timestamp, posted, available] per point.
    box.dataset.points = JSON.stringify(
      points.map(function (p) {
        return [p.timestamp, p.posted, p.available];
      })
    );
    var data = [
      points.map(function (p) {
        return seconds(p.timestamp);
      }),
      points.map(function (p) {
        return Number(p.posted);
      }),
      points.map(function (p) {
        return Number(p.available);
      }),
    ];
    box.replaceChildren();
    var steps = window.uPlot.paths.stepped({ align: 1 });
    var unit = box.dataset.unit || "";
    var options = {
      width: Math.max(320, box.clientWidth),
      height: 280,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { label: unit, size: 70 }],
      series: [
        {},
        { label: "posted", stroke: "#2257a8", width: 2, paths: steps },
        { label: "available", stroke: "#2f9e6b", width: 1.5, dash: [6, 4], paths: steps },
      ],
    };
    var plot = new window.uPlot(options, data, box);
    box.dataset.drawn = String(plot.data[0].length);
    box.dataset.state = "drawn";
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(320, box.clientWidth), height: 280 });
    });
  }

  // -- the live feed: GET /v1/events as a stream (EventSource cannot send the key) -------------

  function eventRow(event) {
    var row = element("tr");
    row.dataset.seq = String(event.seq);
    row.className = "arrived";
    var kind = element("span", event.kind, "status status-" + event.kind);
    var transfer = event.transfer_id
      ? link(root() + "/console/transfer?id=" + event.transfer_id, shortId(event.transfer_id), event.transfer_id)
      : document.createTextNode("—");
    var account = event.account_id
      ? link(root() + "/console/account?id=" + event.account_id, shortId(event.account_id), event.account_id)
      : document.createTextNode("—");
    var recorded = (event.recorded_at || "").replace("T", " ").slice(0, 19) + " UTC";
    [String(event.seq), kind, transfer, account, event.status || "—", recorded].forEach(function (cell) {
      var td = element("td");
      if (typeof cell === "string") td.textContent = cell;
      else td.appendChild(cell);
      row.appendChild(td);
    });
    return row;
  }

  function feedState(text) {
    var badge = document.getElementById("feed-state");
    if (badge) {
      badge.textContent = text;
      badge.dataset.state = text;
    }
  }

  function parseBlock(block) {
    var found = { data: "" };
    block.split("\n").forEach(function (line) {
      var at = line.indexOf(":");
      if (at <= 0) return;
      var name = line.slice(0, at);
      var value = line.slice(at + 1).replace(/^ /, "");
      if (name === "data") found.data += value;
      else found[name] = value;
    });
    return found;
  }

  async function follow(table) {
    if (table.dataset.state) return;
    table.dataset.state = "following";
    var rows = table.querySelector("tbody");
    var since = table.dataset.since || "0";
    var stop = new AbortController();
    window.addEventListener("pagehide", function () {
      stop.abort();
    });
    for (;;) {
      try {
        var answer = await fetch(root() + "/v1/events?since=" + encodeURIComponent(since), {
          headers: authHeaders({ Accept: "text/event-stream" }),
          cache: "no-store",
          signal: stop.signal,
        });
        if (answer.status === 401) {
          forgetKey();
          toSignIn();
          return;
        }
        if (!answer.ok || !answer.body) throw new Error(messageOf(answer.status, await answer.text()));
        feedState("live");
        var reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
        var buffer = "";
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) break;
          buffer += chunk.value;
          var end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            var block = parseBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (!block.data) continue;
            var event = JSON.parse(block.data);
            since = String(event.seq);
            table.dataset.since = since;
            var empty = document.getElementById("no-events");
            if (empty) empty.remove();
            rows.prepend(eventRow(event));
            while (rows.children.length > FEED_ROWS_MAX) rows.lastElementChild.remove();
          }
        }
      } catch (err) {
        if (stop.signal.aborted) return;
      }
      feedState("reconnecting");
      await new Promise(function (resolve) {
        setTimeout(resolve, RECONNECT_MS);
      });
    }
  }

  // -- signing in and out -----------------------------------------------------------------------

  function setUpSignIn() {
    var form = document.getElementById("sign-in-form");
    var input = document.getElementById("api-key");
    var problem = document.getElementById("sign-in-error");
    var next = safeNext(new URLSearchParams(location.search).get("next"));
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var key = input.value.trim();
      problem.hidden = true;
      var answer;
      try {
        answer = await fetch(root() + "/console/fragments/whoami", {
          headers: { Authorization: "Bearer " + key },
          cache: "no-store",
        });
      } catch (err) {
        problem.textContent = "The service did not answer; is it running?";
        problem.hidden = false;
        return;
      }
      if (!answer.ok) {
        problem.textContent =
          answer.status === 401
            ? "This key is not valid here (mistyped, revoked, or another service's)."
            : messageOf(answer.status, await answer.text());
        problem.hidden = false;
        return;
      }
      window.sessionStorage.setItem(STORAGE_KEY, key);
      location.assign(next);
    });
  }

  function start() {
    var page = document.body.dataset.page;
    if (page === "sign-in") {
      setUpSignIn();
      return;
    }
    if (!storedKey()) {
      toSignIn();
      return;
    }
    var current = document.querySelector('nav [data-nav="' + page + '"]');
    if (current) current.classList.add("current");
    var out = document.getElementById("sign-out");
    if (out) {
      out.addEventListener("click", function () {
        forgetKey();
        location.assign(root() + "/console/sign-in");
      });
    }
    window.setInterval(tick, 1000);
  }

  start();
})();
