"""The contract fits the three first-party brokers' real shapes without special cases.

Each mini plugin below speaks a fake that follows `shared/reference/brokers.md`:
Tradovate (token exchange + renewal, errors and penalty tickets as HTTP 200 bodies), IBKR Flex (a
long-lived token, a two-step request-then-poll exchange returning XML, accounts only inside the
statement) and OANDA (a static bearer token, a transaction-id cursor instead of a date).
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import brokersync
import httpx
import pytest
from brokersync import BrokerRegistry, hookimpl
from brokersync.testing import FakeClock

pytestmark = pytest.mark.anyio

UTC = dt.UTC


# --- Tradovate ------------------------------------------------------------------------------------


class TradovateLike:
    @hookimpl
    def broker_metadata(self) -> brokersync.BrokerMetadata:
        return brokersync.BrokerMetadata(
            key="tradovate_like",
            name="Tradovate (test double)",
            auth_type="password",
            credential_fields=[
                brokersync.CredentialField(name="username"),
                brokersync.CredentialField(name="password", secret=True),
                brokersync.CredentialField(name="cid"),
                brokersync.CredentialField(name="sec", secret=True),
            ],
            environments={
                "live": "https://live.tradovateapi.invalid/v1",
                "demo": "https://demo.tradovateapi.invalid/v1",
            },
            default_environment="demo",
            capabilities=brokersync.Capabilities(refresh_token=True),
        )

    @hookimpl
    async def authenticate(self, ctx: brokersync.BrokerContext, credentials: brokersync.Credentials) -> Any:
        body: dict[str, Any] = {
            "name": credentials["username"],
            "password": credentials["password"],
            "appId": "brokersync",
            "appVersion": "1.0",
            "cid": credentials["cid"],
            "sec": credentials["sec"],
        }
        while True:
            data = (await ctx.http.post("/auth/accesstokenrequest", json=body)).json()
            if "p-ticket" not in data:
                break
            if data.get("p-captcha"):
                raise brokersync.BrokerRateLimitError(
                    "Tradovate requires a captcha for this IP; retry in about an hour", retry_after=3600
                )
            # The documented penalty protocol: wait p-time, resend the identical body plus the ticket.
            await ctx.sleep(float(data["p-time"]))
            body = {**body, "p-ticket": data["p-ticket"]}
        if data.get("errorText"):
            raise brokersync.BrokerAuthError(f"Tradovate refused the login: {data['errorText']}")
        return _tradovate_auth(data)

    @hookimpl
    async def refresh_token(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult) -> Any:
        data = (
            await ctx.http.get("/auth/renewaccesstoken", headers={"Authorization": f"Bearer {auth.access_token}"})
        ).json()
        return _tradovate_auth(data)

    @hookimpl
    async def get_accounts(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult) -> Any:
        data = (await ctx.http.get("/account/list", headers={"Authorization": f"Bearer {auth.access_token}"})).json()
        return [brokersync.Account(id=str(a["id"]), name=a["name"], currency="USD", raw=a) for a in data]

    @hookimpl
    async def get_trades(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult, account: Any) -> Any:
        return []


def _tradovate_auth(data: dict[str, Any]) -> brokersync.AuthResult:
    expires = dt.datetime.fromisoformat(data["expirationTime"].replace("Z", "+00:00"))
    return brokersync.AuthResult(access_token=data["accessToken"], expires_at=expires, state={"userId": data["userId"]})


def tradovate_api(penalties: int = 0, captcha: bool = False) -> tuple[httpx.MockTransport, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    state = {"penalties": penalties, "token": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.lower()
        if path == "/v1/auth/accesstokenrequest":
            body = json.loads(request.content)
            seen.append(body)
            if captcha:
                return httpx.Response(200, json={"p-ticket": "tkt-captcha", "p-time": 3600, "p-captcha": True})
            if state["penalties"] > 0:
                state["penalties"] -= 1
                return httpx.Response(200, json={"p-ticket": f"tkt-{state['penalties']}", "p-time": 15})
            if body["password"] != "right-pass":
                return httpx.Response(200, json={"errorText": "Incorrect username or password."})
            state["token"] += 1
            return httpx.Response(
                200,
                json={
                    "accessToken": f"acc-{state['token']}-xyzxyz",
                    "expirationTime": "2024-06-03T13:20:00.000Z",
                    "userId": 15460,
                },
            )
        if path == "/v1/auth/renewaccesstoken":
            state["token"] += 1
            return httpx.Response(
                200,
                json={
                    "accessToken": f"acc-{state['token']}-xyzxyz",
                    "expirationTime": "2024-06-03T14:50:00.000Z",
                    "userId": 15460,
                },
            )
        if path == "/v1/account/list":
            return httpx.Response(200, json=[{"id": 701, "name": "DEMO12345", "active": True}])
        return httpx.Response(404)

    return httpx.MockTransport(handler), seen


TRADOVATE_CREDS = {"username": "ann", "password": "right-pass", "cid": "1234", "sec": "api-secret-value"}


async def test_tradovate_penalty_ticket_is_waited_and_resent_with_the_ticket():
    transport, seen = tradovate_api(penalties=2)
    time = FakeClock(dt.datetime(2024, 6, 3, 12, 0, tzinfo=UTC))
    registry = BrokerRegistry(entry_points=False)
    registry.register("tradovate_like", TradovateLike)
    async with registry.get("tradovate_like", transport=transport, clock=time, sleep=time.sleep) as broker:
        auth = await broker.authenticate(TRADOVATE_CREDS)
        assert auth.expires_at == dt.datetime(2024, 6, 3, 13, 20, tzinfo=UTC)
        assert auth.state["userId"] == 15460
        renewed = await broker.refresh_token(TRADOVATE_CREDS, auth)
        assert renewed is not None and renewed.expires_at == dt.datetime(2024, 6, 3, 14, 50, tzinfo=UTC)
        [account] = await broker.get_accounts(renewed)
    assert time.sleeps == [15.0, 15.0]
    assert [b.get("p-ticket") for b in seen] == [None, "tkt-1", "tkt-0"]
    assert all({k: v for k, v in b.items() if k != "p-ticket"} == {k: v for k, v in seen[0].items()} for b in seen)
    assert account.id == "701" and account.name == "DEMO12345"


async def test_tradovate_login_failure_in_a_200_body_is_an_auth_error_and_captcha_a_long_rate_limit():
    registry = BrokerRegistry(entry_points=False)
    registry.register("tradovate_like", TradovateLike)
    transport, _ = tradovate_api()
    async with registry.get("tradovate_like", transport=transport) as broker:
        with pytest.raises(brokersync.BrokerAuthError, match="Incorrect username or password"):
            await broker.authenticate({**TRADOVATE_CREDS, "password": "wrong-pass"})
    transport, _ = tradovate_api(captcha=True)
    async with registry.get("tradovate_like", transport=transport) as broker:
        with pytest.raises(brokersync.BrokerRateLimitError) as excinfo:
            await broker.authenticate(TRADOVATE_CREDS)
    assert excinfo.value.retry_after == 3600
    assert brokersync.classify_error(excinfo.value).type is brokersync.ErrorType.RATE_LIMIT


# --- IBKR Flex ------------------------------------------------------------------------------------


STATEMENT = """<FlexQueryResponse queryName="trades" type="AF">
<FlexStatements count="2">
<FlexStatement accountId="U1234567" fromDate="20240601" toDate="20240603">
<Trades>
<Trade accountId="U1234567" currency="USD" symbol="AAPL" tradeID="9001" dateTime="20240603;093500"
  buySell="BUY" quantity="10" tradePrice="190.10" ibCommission="-1.00" fifoPnlRealized="0"/>
</Trades>
</FlexStatement>
<FlexStatement accountId="U7654321" fromDate="20240601" toDate="20240603">
<Trades/>
</FlexStatement>
</FlexStatements>
</FlexQueryResponse>"""


class IbkrLike:
    @hookimpl
    def broker_metadata(self) -> brokersync.BrokerMetadata:
        return brokersync.BrokerMetadata(
            key="ibkr_like",
            name="IBKR Flex (test double)",
            auth_type="token",
            credential_fields=[
                brokersync.CredentialField(name="token", secret=True),
                brokersync.CredentialField(name="query_id"),
            ],
            environments={"live": "https://ndcdyn.interactivebrokers.invalid/AccountManagement/FlexWebService"},
        )

    @hookimpl
    async def authenticate(self, credentials: brokersync.Credentials) -> Any:
        # No token exchange: the long-lived Flex token is the credential.
        return brokersync.AuthResult(access_token=credentials["token"], state={"query_id": credentials["query_id"]})

    async def _statement(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult) -> ET.Element:
        if "statement" in ctx.cache:
            return ctx.cache["statement"]
        params = {"t": auth.access_token, "q": auth.state["query_id"], "v": "3"}
        sent = ET.fromstring((await ctx.http.get("/SendRequest", params=params)).text)
        if sent.findtext("Status") != "Success":
            raise brokersync.BrokerAuthError(f"IBKR Flex: {sent.findtext('ErrorMessage')}")
        url = (sent.findtext("Url") or "").strip()
        reference = sent.findtext("ReferenceCode")
        while True:
            root = ET.fromstring(
                (await ctx.http.get(url, params={"t": auth.access_token, "q": reference, "v": "3"})).text
            )
            if root.tag == "FlexQueryResponse":
                ctx.cache["statement"] = root
                return root
            if root.findtext("ErrorCode") != "1019":
                raise brokersync.BrokerApiError(f"IBKR Flex: {root.findtext('ErrorMessage')}")
            await ctx.sleep(5)

    @hookimpl
    async def get_accounts(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult) -> Any:
        root = await self._statement(ctx, auth)
        return [brokersync.Account(id=s.attrib["accountId"]) for s in root.iter("FlexStatement")]

    @hookimpl
    async def get_trades(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult, account: Any) -> Any:
        root = await self._statement(ctx, auth)
        eastern = dt.timezone(dt.timedelta(hours=-4))  # brokers.md: Flex times are US/Eastern, no offset
        records = []
        for trade in root.iter("Trade"):
            if trade.attrib["accountId"] != account.id:
                continue
            when = dt.datetime.strptime(trade.attrib["dateTime"], "%Y%m%d;%H%M%S").replace(tzinfo=eastern)
            records.append(
                {
                    "broker_trade_id": trade.attrib["tradeID"],
                    "symbol": trade.attrib["symbol"],
                    "direction": "long" if trade.attrib["buySell"] == "BUY" else "short",
                    "opened_at": when,
                    "entry_price": trade.attrib["tradePrice"],
                    "quantity": trade.attrib["quantity"],
                    "fees": str(-Decimal(trade.attrib["ibCommission"])),
                    "currency": trade.attrib["currency"],
                    "raw": dict(trade.attrib),
                }
            )
        return records


def ibkr_api(polls_before_ready: int) -> tuple[httpx.MockTransport, list[str]]:
    calls: list[str] = []
    state = {"left": polls_before_ready}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path.rsplit("/", 1)[-1])
        if request.url.params.get("v") != "3":
            return httpx.Response(200, text="<FlexStatementResponse><Status>Fail</Status></FlexStatementResponse>")
        if request.url.path.endswith("/SendRequest"):
            if request.url.params["t"] != "flex-token-123456":
                return httpx.Response(
                    200,
                    text="<FlexStatementResponse><Status>Fail</Status><ErrorCode>1015</ErrorCode>"
                    "<ErrorMessage>Token is invalid.</ErrorMessage></FlexStatementResponse>",
                )
            return httpx.Response(
                200,
                text="<FlexStatementResponse><Status>Success</Status><ReferenceCode>555</ReferenceCode>"
                "<Url>\n https://gdcdyn.interactivebrokers.invalid/AccountManagement/FlexWebService/GetStatement"
                " \n</Url>"
                "</FlexStatementResponse>",
            )
        if request.url.path.endswith("/GetStatement") and request.url.params["q"] == "555":
            if state["left"] > 0:
                state["left"] -= 1
                return httpx.Response(
                    200,
                    text="<FlexStatementResponse><Status>Warn</Status><ErrorCode>1019</ErrorCode>"
                    "<ErrorMessage>Statement generation in progress.</ErrorMessage></FlexStatementResponse>",
                )
            return httpx.Response(200, text=STATEMENT)
        return httpx.Response(404)

    return httpx.MockTransport(handler), calls


async def test_ibkr_two_step_poll_with_accounts_from_the_statement_fetched_once_per_run():
    transport, calls = ibkr_api(polls_before_ready=2)
    time = FakeClock(dt.datetime(2024, 6, 3, 12, 0, tzinfo=UTC))
    registry = BrokerRegistry(entry_points=False)
    registry.register("ibkr_like", IbkrLike)
    async with registry.get("ibkr_like", transport=transport, clock=time, sleep=time.sleep) as broker:
        auth = await broker.authenticate({"token": "flex-token-123456", "query_id": "987654"})
        assert auth.expires_at is None
        accounts = await broker.get_accounts(auth)
        trades = [t for a in accounts async for b in broker.iter_trades(auth, a) for t in b.trades]
    assert [a.id for a in accounts] == ["U1234567", "U7654321"]
    assert calls == ["SendRequest", "GetStatement", "GetStatement", "GetStatement"]
    assert time.sleeps == [5, 5]
    [trade] = trades
    assert trade.opened_at == dt.datetime(2024, 6, 3, 13, 35, tzinfo=UTC)
    assert trade.fees == Decimal("1.00") and trade.entry_price == Decimal("190.10")
    assert trade.raw["tradeID"] == "9001"


async def test_ibkr_invalid_token_is_an_auth_error_without_leaking_it():
    transport, _ = ibkr_api(polls_before_ready=0)
    registry = BrokerRegistry(entry_points=False)
    registry.register("ibkr_like", IbkrLike)
    async with registry.get("ibkr_like", transport=transport) as broker:
        auth = await broker.authenticate({"token": "flex-token-WRONG1", "query_id": "987654"})
        with pytest.raises(brokersync.BrokerAuthError, match="Token is invalid") as excinfo:
            await broker.get_accounts(auth)
    assert "flex-token-WRONG1" not in str(excinfo.value)


# --- OANDA ----------------------------------------------------------------------------------------


class OandaLike:
    @hookimpl
    def broker_metadata(self) -> brokersync.BrokerMetadata:
        return brokersync.BrokerMetadata(
            key="oanda_like",
            name="OANDA v20 (test double)",
            auth_type="token",
            credential_fields=[brokersync.CredentialField(name="token", secret=True)],
            environments={
                "live": "https://api-fxtrade.oanda.invalid",
                "practice": "https://api-fxpractice.oanda.invalid",
            },
            default_environment="practice",
            capabilities=brokersync.Capabilities(cursor="opaque"),
        )

    @hookimpl
    async def authenticate(self, ctx: brokersync.BrokerContext, credentials: brokersync.Credentials) -> Any:
        # A static token: one cheap call proves it works (401 -> BrokerAuthError through the core client).
        await ctx.http.get("/v3/accounts", headers={"Authorization": f"Bearer {credentials['token']}"})
        return brokersync.AuthResult(access_token=credentials["token"])

    @hookimpl
    async def get_accounts(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult) -> Any:
        data = (await ctx.http.get("/v3/accounts", headers={"Authorization": f"Bearer {auth.access_token}"})).json()
        return [{"id": a["id"]} for a in data["accounts"]]

    @hookimpl
    async def get_trades(
        self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult, account: Any, cursor: str | None
    ) -> Any:
        response = await ctx.http.get(
            f"/v3/accounts/{account.id}/transactions/sinceid",
            params={"id": cursor or "0"},
            headers={"Authorization": f"Bearer {auth.access_token}"},
        )
        data = response.json()
        records = [
            {
                "broker_trade_id": t["tradeID"],
                "symbol": t["instrument"],
                "direction": "long" if Decimal(t["units"]) > 0 else "short",
                "opened_at": t["time"][:26] + "Z",  # 9-digit fractions: keep microseconds
                "entry_price": t["price"],
                "quantity": str(abs(Decimal(t["units"]))),
                "currency": "USD",
            }
            for t in data["transactions"]
            if t["type"] == "ORDER_FILL"
        ]
        yield brokersync.TradePage(records=records, cursor=data["lastTransactionID"])


def oanda_api() -> tuple[httpx.MockTransport, list[str]]:
    asked: list[str] = []
    transactions = [
        {"id": "6358", "type": "ORDER_FILL", "tradeID": "6358", "instrument": "EUR_USD", "units": "1000",
         "price": "1.08412", "time": "2024-06-03T10:00:00.123456789Z"},
        {"id": "6359", "type": "DAILY_FINANCING", "time": "2024-06-03T21:00:00.000000000Z"},
        {"id": "6360", "type": "ORDER_FILL", "tradeID": "6360", "instrument": "USD_JPY", "units": "-500",
         "price": "156.201", "time": "2024-06-03T11:00:00.000000000Z"},
    ]  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != "Bearer oanda-token-abcdef":
            return httpx.Response(401, json={"errorMessage": "Insufficient authorization to perform request."})
        if request.url.path == "/v3/accounts":
            return httpx.Response(200, json={"accounts": [{"id": "101-001-1-001", "tags": []}]})
        if request.url.path.endswith("/transactions/sinceid"):
            since = request.url.params["id"]
            asked.append(since)
            newer = [t for t in transactions if int(t["id"]) > int(since)]
            return httpx.Response(200, json={"transactions": newer, "lastTransactionID": "6360"})
        return httpx.Response(404)

    return httpx.MockTransport(handler), asked


async def test_oanda_static_token_and_transaction_id_cursor():
    transport, asked = oanda_api()
    registry = BrokerRegistry(entry_points=False)
    registry.register("oanda_like", OandaLike)
    async with registry.get("oanda_like", transport=transport) as broker:
        auth = await broker.authenticate({"token": "oanda-token-abcdef"})
        [account] = await broker.get_accounts(auth)
        first = [b async for b in broker.iter_trades(auth, account)]
        again = [b async for b in broker.iter_trades(auth, account, cursor=first[-1].cursor)]
        with pytest.raises(brokersync.BrokerAuthError):
            await broker.authenticate({"token": "oanda-token-wrong0"})
    assert [t.broker_trade_id for b in first for t in b.trades] == ["6358", "6360"]
    assert first[-1].cursor == "6360"
    assert asked == ["0", "6360"]
    assert [t for b in again for t in b.trades] == []
    short = first[0].trades[1]
    assert short.direction is brokersync.Direction.SHORT and short.quantity == Decimal(500)
    assert first[0].trades[0].opened_at == dt.datetime(2024, 6, 3, 10, 0, 0, 123456, tzinfo=UTC)
