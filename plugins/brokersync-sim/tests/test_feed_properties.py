"""Properties of the fake's trade feed, for any seed, size and page size (hypothesis)."""

from __future__ import annotations

import httpx
from brokersync_sim import SimAPI
from hypothesis import given, settings
from hypothesis import strategies as st

CREDENTIALS = {"username": "prop", "password": "sim-password"}


def _client(api: SimAPI) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(api.handle_now), base_url=api.base_url + "/")


def _read(client: httpx.Client, token: str, account: str, limit: int, cursor: str | None = None, pages: int = 10**9):
    """Follow the feed from ``cursor``: (records, cursor after the last page read, pages read)."""
    records, read = [], 0
    while read < pages:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"accounts/{account}/trades", params=params, headers={"Authorization": f"Bearer {token}"})
        body.raise_for_status()
        data = body.json()
        records += data["trades"]
        cursor, read = data["next_cursor"], read + 1
        if not data["has_more"]:
            break
    return records, cursor, read


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    trades=st.integers(0, 250),
    limit=st.integers(1, 60),
    stop_after=st.integers(1, 5),
    correction_rate=st.sampled_from([0.0, 0.01, 0.1]),
)
def test_paging_and_resuming_deliver_every_trade_once_then_only_the_corrections(
    seed, trades, limit, stop_after, correction_rate
):
    unlimited = (10**9, 1.0)  # this test is about the feed, not the limits (they are tested in test_api.py)
    api = SimAPI(
        seed=seed,
        accounts=1,
        trades_per_account=trades,
        correction_rate=correction_rate,
        user_limit=unlimited,
        app_limit=unlimited,
    )
    with _client(api) as client:
        token = client.post("auth/token", json=CREDENTIALS).json()["access_token"]
        (account,) = [
            a["id"] for a in client.get("accounts", headers={"Authorization": f"Bearer {token}"}).json()["accounts"]
        ]
        expected = api.expected_trades("prop")

        # Stop after a few pages and resume from the cursor: together exactly the whole feed, once.
        head, cursor, _ = _read(client, token, account, limit, pages=stop_after)
        tail, cursor, _ = _read(client, token, account, limit, cursor=cursor) if len(head) < trades else ([], cursor, 0)
        ids = [r["id"] for r in head + tail]
        assert len(ids) == len(set(ids)) == trades
        assert set(ids) == set(expected)
        assert all(r == expected[r["id"]] for r in head + tail)

        # The complete listing triggered the broker's corrections: from the cursor, exactly those.
        corrected = {k: v for k, v in api.expected_trades("prop").items() if v["version"] > 1}
        changes, _, _ = _read(client, token, account, limit, cursor=cursor)
    assert {r["id"]: r for r in changes} == corrected
    if correction_rate and trades:
        assert corrected
