"""Fails at import time, like a plugin whose dependency is not installed."""

from __future__ import annotations

import bstest_a_module_that_is_not_installed  # noqa: F401

plugin = object()
