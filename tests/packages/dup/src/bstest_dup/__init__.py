"""Claims the key 'alpha' (taken by bstest-good): the core must report it and keep the first."""

from __future__ import annotations

from bstest_good import alpha as plugin

__all__ = ["plugin"]
