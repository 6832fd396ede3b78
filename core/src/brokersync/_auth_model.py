"""Credentials and the token a login returns: secret values that never show in a repr.

Re-exported from :mod:`brokersync.models` and the package root.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from brokersync._redact import MASK, register_secret, register_secrets
from brokersync._validators import as_mapping, as_utc_optional, check_mapping, check_time

__all__ = ["AuthResult", "Credentials"]


# --- credentials and auth ---------------------------------------------------------------------------


class Credentials(Mapping[str, str]):
    """A broker connection's credential values, keyed by the broker's credential field names.

    Behaves as a read-only mapping (``credentials["password"]``). Secret fields (as the broker's
    metadata marks them) are masked in ``repr`` and registered with the redactor, so they cannot
    leak through logs or error messages. Build one with :meth:`BrokerMetadata.validate_credentials`.
    """

    __slots__ = ("_secret_fields", "_values")

    def __init__(self, values: Mapping[str, str], *, secret_fields: Sequence[str] = ()) -> None:
        self._values = dict(values)
        self._secret_fields = frozenset(secret_fields)
        register_secrets(v for k, v in self._values.items() if k in self._secret_fields)

    @property
    def secret_fields(self) -> frozenset[str]:
        """Names of the fields whose values are secret."""
        return self._secret_fields

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def redacted(self) -> dict[str, str]:
        """Return the values with every secret replaced by ``***``: safe to show or log."""
        return {k: (MASK if k in self._secret_fields else v) for k, v in self._values.items()}

    def __repr__(self) -> str:
        return f"Credentials({self.redacted()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Credentials):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))


def _secret_repr(value: Any) -> str:
    return "None" if value is None else repr(MASK)


@attrs.frozen(kw_only=True)
class AuthResult:
    """What a successful ``authenticate`` or ``refresh_token`` returns.

    Attributes:
        access_token: The token sent with broker requests. Never shown in a repr.
        expires_at: When the token stops working (tz-aware UTC), or ``None`` if it does not expire.
        refresh_token: A token to get a new access token with, for brokers that issue one.
        state: Extra values the plugin needs on later calls (user id, device id, API hosts).
            Stored encrypted with the token; never shown in a repr.
    """

    access_token: str = attrs.field(repr=_secret_repr)
    expires_at: dt.datetime | None = attrs.field(default=None, converter=as_utc_optional, validator=check_time)
    refresh_token: str | None = attrs.field(default=None, repr=_secret_repr)
    state: Mapping[str, Any] = attrs.field(
        factory=dict, converter=as_mapping, validator=check_mapping, repr=lambda _: "{...}"
    )

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.access_token, str):
            raise TypeError(f"AuthResult.access_token must be a string, got {type(self.access_token).__name__}")
        register_secret(self.access_token)
        register_secret(self.refresh_token)

    def expires_within(self, margin: dt.timedelta, *, now: dt.datetime | None = None) -> bool:
        """Whether the token expires within ``margin`` from ``now`` (default: the current time)."""
        if self.expires_at is None:
            return False
        return self.expires_at - margin <= (now or dt.datetime.now(dt.UTC))
