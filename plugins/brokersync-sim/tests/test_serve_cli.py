"""``brokersync-sim serve`` refuses bad arguments and a busy port with one line and exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brokersync_sim", "serve", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trades", "-5"], "argument --trades: -5 must be at least 0"),
        (["--fault-rate", "7"], "argument --fault-rate: 7 must be between 0 and 1"),
        (["--malformed-rate", "-0.1"], "argument --malformed-rate: -0.1 must be between 0 and 1"),
        (["--accounts", "0"], "argument --accounts: 0 must be at least 1"),
        (["--latency", "soon"], "argument --latency: 'soon' is not a number of seconds"),
    ],
)
def test_bad_arguments_are_one_usage_error(args: list[str], message: str) -> None:
    result = serve(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"brokersync-sim serve: error: {message}"


def test_a_busy_port_is_one_line_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--port", str(port))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"brokersync-sim: error: cannot listen on 127.0.0.1:{port}:")
    assert "--port" in line
