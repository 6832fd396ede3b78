"""Apply what a broker asked a retried request to carry (:class:`~brokersync.errors.RequestChange`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from brokersync.errors import PluginContractError, RequestChange

__all__ = ["apply_change"]


def apply_change(kwargs: Mapping[str, Any], change: RequestChange, *, broker: str) -> dict[str, Any]:
    """``kwargs`` (httpx request arguments) with ``change`` merged in; the original is not modified.

    Raises:
        PluginContractError: ``change.json`` asks for JSON fields on a request whose body is not a
            JSON object (raw ``content``/``data``, or a JSON list): the resend cannot be built.
    """
    out = dict(kwargs)
    if change.json:
        body = out.get("json")
        if body is None and (out.get("content") is not None or out.get("data") is not None):
            raise PluginContractError(
                f"broker {broker!r}: a RequestChange adds JSON fields {sorted(change.json)} to a request whose "
                "body is not JSON; send the request with json=",
                broker=broker,
            )
        if body is not None and not isinstance(body, Mapping):
            raise PluginContractError(
                f"broker {broker!r}: a RequestChange adds JSON fields to a JSON {type(body).__name__} body; "
                "only a JSON object can take fields",
                broker=broker,
            )
        out["json"] = {**dict(body or {}), **change.json}
    if change.headers:
        headers = httpx.Headers(out.get("headers"))
        headers.update(dict(change.headers))
        out["headers"] = headers
    if change.params:
        out["params"] = httpx.QueryParams(out.get("params")).merge(dict(change.params))
    return out
