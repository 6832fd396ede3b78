"""The paging helpers on ctx.http against fake broker list endpoints (httpx.MockTransport).

Each fake serves a fixed set of records the way one family of broker APIs pages them, including
the ways they go wrong (a cursor that stops advancing, a link back to a page already read, an
offset the broker ignores, a page size the broker caps, many records sharing one timestamp).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal

import httpx
import pytest
from brokersync import Page, PaginationError
from brokersync._http import BrokerHttpClient

pytestmark = pytest.mark.anyio

BASE = "https://api.pages.test/v1"


def client(handler) -> BrokerHttpClient:
    return BrokerHttpClient(broker="pages", base_url=BASE, transport=httpx.MockTransport(handler))


RECORDS = [{"id": f"F{n:03d}", "price": f"{4800 + n}.25"} for n in range(23)]


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(token: str) -> int:
    return int(json.loads(base64.urlsafe_b64decode(token))["o"])


def cursor_api(*, stuck_after: int | None = None, size: int = 5):
    """GET /fills?cursor= -> {"data": {"fills": [...]}, "next": token|null}. ``stuck_after``: the
    broker keeps answering the same next token from that offset on (a bug seen in the wild)."""
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        start = _offset(request.url.params["cursor"]) if "cursor" in request.url.params else 0
        page = RECORDS[start : start + size]
        following = start + size
        if stuck_after is not None and following > stuck_after:
            following = stuck_after
        nxt = _token(following) if following < len(RECORDS) else None
        text = json.dumps({"data": {"fills": page}, "next": nxt}).replace('"4800.25"', "4800.25")
        return httpx.Response(200, text=text, headers={"Content-Type": "application/json"})

    return handle, requests


async def test_cursor_paging_reads_every_record_once_and_resumes_from_a_page_cursor():
    handle, requests = cursor_api()
    async with client(handle) as http:
        pages = [p async for p in http.pages_by_cursor("fills", records="data.fills", next_cursor="next")]
    got = [r["id"] for p in pages for r in p.records]
    assert got == [r["id"] for r in RECORDS]
    assert len(requests) == 5 and pages[-1].cursor is None
    # A JSON number arrives as Decimal, never float.
    assert pages[0].records[0]["price"] == Decimal("4800.25")
    # Resuming from the second page's cursor reads what follows it, and only that.
    handle2, _ = cursor_api()
    async with client(handle2) as http:
        rest = [
            p
            async for p in http.pages_by_cursor(
                "fills", records="data.fills", next_cursor="next", cursor=pages[1].cursor
            )
        ]
    assert [r["id"] for p in rest for r in p.records] == [r["id"] for r in RECORDS[10:]]


async def test_a_cursor_that_stops_advancing_is_a_clear_error_not_a_loop():
    handle, requests = cursor_api(stuck_after=10)
    async with client(handle) as http:
        with pytest.raises(PaginationError, match=r"already requested: the cursor does not advance") as caught:
            async for _ in http.pages_by_cursor("fills", records="data.fills", next_cursor="next"):
                pass
    assert "broker 'pages'" in str(caught.value)
    assert len(requests) <= 4  # it stopped at the first repeat, not at a timeout


async def test_cursor_in_json_body_and_has_more_flag():
    seen: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        start = int(body.get("pageToken") or 0)
        page = RECORDS[start : start + 10]
        # This broker always sends a token, and says with a flag whether it means anything.
        return httpx.Response(200, json={"items": page, "token": str(start + 10), "more": start + 10 < len(RECORDS)})

    async with client(handle) as http:
        pages = [
            p
            async for p in http.pages_by_cursor(
                "fills/search",
                method="POST",
                json_body={"account": "A1"},
                records="items",
                next_cursor="token",
                has_more="more",
                cursor_param="pageToken",
                cursor_in="json",
            )
        ]
    assert [r["id"] for p in pages for r in p.records] == [r["id"] for r in RECORDS]
    assert all(b["account"] == "A1" for b in seen) and [b.get("pageToken") for b in seen] == [None, "10", "20"]


async def test_max_pages_reached_with_pages_left_is_an_error_never_a_silent_cap():
    handle, _ = cursor_api()
    async with client(handle) as http:
        got: list[Page] = []

        async def read() -> None:
            async for page in http.pages_by_cursor("fills", records="data.fills", next_cursor="next", max_pages=2):
                got.append(page)

        with pytest.raises(PaginationError, match=r"max_pages=2 while the broker still has pages"):
            await read()
    assert len(got) == 2


def link_api(*, header: bool, loop_at: int | None = None):
    def handle(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("page", "0"))
        page = RECORDS[start : start + 7]
        following = start + 7
        if loop_at is not None and following > loop_at:
            following = loop_at
        nxt = f"{BASE}/fills?page={following}&size=7" if following < len(RECORDS) else None
        if header:
            headers = {"Link": f'<{nxt}>; rel="next", <{BASE}/fills?page=0>; rel="first"'} if nxt else {}
            return httpx.Response(200, json=page, headers=headers)
        return httpx.Response(200, json={"results": page, "links": {"next": nxt}})

    return handle


@pytest.mark.parametrize("header", [True, False], ids=["link-header", "link-in-body"])
async def test_next_link_paging(header: bool):
    async with client(link_api(header=header)) as http:
        if header:
            pages = [p async for p in http.pages_by_link("fills", records=None, params={"size": 7})]
        else:
            pages = [p async for p in http.pages_by_link("fills", records="results", next_link="links.next")]
    assert [r["id"] for p in pages for r in p.records] == [r["id"] for r in RECORDS]
    assert pages[-1].cursor is None


async def test_a_link_back_to_a_page_already_read_is_an_error():
    async with client(link_api(header=True, loop_at=7)) as http:
        with pytest.raises(PaginationError, match=r"already followed: a loop"):
            async for _ in http.pages_by_link("fills", records=None):
                pass


def offset_api(*, ignores_offset: bool = False, cap: int | None = None):
    def handle(request: httpx.Request) -> httpx.Response:
        offset = 0 if ignores_offset else int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        if cap is not None:
            limit = min(limit, cap)
        return httpx.Response(200, json={"rows": RECORDS[offset : offset + limit], "total": len(RECORDS)})

    return handle


async def test_offset_paging_stops_on_the_short_page():
    async with client(offset_api()) as http:
        pages = [p async for p in http.pages_by_offset("fills", records="rows", limit=6)]
    assert [r["id"] for p in pages for r in p.records] == [r["id"] for r in RECORDS]
    assert [p.cursor for p in pages] == ["6", "12", "18", None]


async def test_offset_paging_with_total_stops_exactly_at_it():
    requests = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return offset_api()(request)

    async with client(handle) as http:
        pages = [p async for p in http.pages_by_offset("fills", records="rows", limit=23, total="total")]
    assert requests == 1 and len(pages[0].records) == 23


async def test_a_broker_that_ignores_the_offset_is_caught():
    async with client(offset_api(ignores_offset=True)) as http:
        with pytest.raises(PaginationError, match=r"ignores 'offset'"):
            async for _ in http.pages_by_offset("fills", records="rows", limit=5):
                pass


async def test_a_broker_that_caps_the_page_below_the_limit_is_caught_when_it_says_the_total():
    # Asked for 10, the broker sends 4: without its total this looks like the last page.
    async with client(offset_api(cap=4)) as http:
        with pytest.raises(PaginationError, match=r"caps the page size at 4"):
            async for _ in http.pages_by_offset("fills", records="rows", limit=10, total="total"):
                pass


# -- time windows -----------------------------------------------------------------------------

NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _fills() -> list[dict]:
    """Fills over 5 days, with bursts that share one millisecond (a sweep of the book fills many orders)."""
    fills = []
    start = NOW - 5 * DAY
    n = 0
    for day in range(5):
        for burst in range(4):
            at = start + day * DAY + dt.timedelta(hours=2 + 3 * burst)
            for _ in range(1 + (burst * 2 + day) % 5):  # 1..5 fills at the same instant
                fills.append({"id": f"X{n:04d}", "time": int(at.timestamp() * 1000)})
                n += 1
    return fills


FILLS = _fills()


def time_api(*, max_window: dt.timedelta, depth: dt.timedelta, limit: int):
    """GET /fills?from=&to= (epoch ms, [from, to)) -> the first ``limit`` fills by (time, id).

    Refuses a window longer than ``max_window`` and a ``from`` older than ``depth`` (HTTP 400), as
    brokers with such limits do.
    """
    requests: list[tuple[int, int]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        lo, hi = int(request.url.params["from"]), int(request.url.params["to"])
        requests.append((lo, hi))
        if hi - lo > max_window.total_seconds() * 1000:
            return httpx.Response(400, json={"error": "window too long"})
        if lo < (NOW - depth).timestamp() * 1000:
            return httpx.Response(400, json={"error": "beyond history"})
        rows = sorted((f for f in FILLS if lo <= f["time"] < hi), key=lambda f: (f["time"], f["id"]))
        return httpx.Response(200, json={"fills": rows[:limit]})

    return handle, requests


def _ms(a: dt.datetime, b: dt.datetime) -> dict[str, int]:
    return {"from": int(a.timestamp() * 1000), "to": int(b.timestamp() * 1000)}


def _when(fill: dict) -> dt.datetime:
    return dt.datetime.fromtimestamp(fill["time"] / 1000, dt.UTC)


async def test_time_windows_keep_records_sharing_a_timestamp_at_a_page_boundary():
    handle, requests = time_api(max_window=DAY, depth=30 * DAY, limit=6)
    async with client(handle) as http:
        pages = [
            p
            async for p in http.pages_by_time(
                "fills",
                records="fills",
                timestamp=_when,
                record_id=lambda f: f["id"],
                window_params=_ms,
                start=NOW - 6 * DAY,
                end=NOW,
                max_window=DAY,
                history_depth=30 * DAY,
                limit=6,
            )
        ]
    got = [r["id"] for p in pages for r in p.records]
    assert sorted(got) == sorted(f["id"] for f in FILLS)  # nothing missing
    assert len(got) == len(set(got))  # nothing twice
    assert all(hi - lo <= DAY.total_seconds() * 1000 for lo, hi in requests)
    assert pages[-1].until == NOW
    # Page boundaries did fall inside bursts of fills sharing one instant (else this proves nothing).
    assert any(p.until is not None and p.until < NOW and p.cursor == p.until.isoformat() for p in pages)
    cut = [p for p in pages if p.until is not None and p.until < NOW and p.until.hour not in (0, 12)]
    assert cut and any(sum(1 for f in FILLS if _when(f) == p.until) > 1 for p in cut)


async def test_the_since_last_plus_one_way_would_have_lost_fills_here():
    # Ground truth for the test above: re-reading from last + 1 ms skips fills sharing a boundary.
    handle, _ = time_api(max_window=10 * DAY, depth=30 * DAY, limit=6)
    async with client(handle) as http:
        got, since = [], NOW - 6 * DAY
        while True:
            body = (await http.get("fills", params=_ms(since, NOW))).json()
            got += [f["id"] for f in body["fills"]]
            if len(body["fills"]) < 6:
                break
            since = _when(body["fills"][-1]) + dt.timedelta(milliseconds=1)
    assert len(set(got)) < len(FILLS)


async def test_history_depth_moves_an_older_start_up_instead_of_failing():
    handle, requests = time_api(max_window=2 * DAY, depth=3 * DAY, limit=100)
    async with client(handle) as http:
        pages = [
            p
            async for p in http.pages_by_time(
                "fills",
                records="fills",
                timestamp=_when,
                record_id=lambda f: f["id"],
                window_params=_ms,
                start=None,
                end=NOW,
                max_window=2 * DAY,
                history_depth=3 * DAY,
                limit=100,
            )
        ]
    expected = {f["id"] for f in FILLS if _when(f) >= NOW - 3 * DAY}
    assert {r["id"] for p in pages for r in p.records} == expected
    assert requests[0][0] == int((NOW - 3 * DAY).timestamp() * 1000)


async def test_more_records_at_one_instant_than_a_page_holds_is_an_error():
    handle, _ = time_api(max_window=DAY, depth=30 * DAY, limit=2)
    async with client(handle) as http:
        with pytest.raises(PaginationError, match=r"share the time"):
            async for _ in http.pages_by_time(
                "fills",
                records="fills",
                timestamp=_when,
                record_id=lambda f: f["id"],
                window_params=_ms,
                start=NOW - 5 * DAY,
                end=NOW,
                max_window=DAY,
                limit=2,
            ):
                pass
