"""What every command gets: the output streams and a lazily connected Engine API client.

The client is made on first use, so `berth --help` or a usage error never touches the daemon; making it pings
the daemon and, for a socket berth owns, starts berthd when nobody answers (berth.client.autostart).
May import: the standard library, berth.client, berth.errors.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from berth.errors import BerthError, InvalidArgument, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~8 ms to import: only mypy reads it
    from typing import BinaryIO, TextIO

    from berth.client.hosts import DaemonHost
    from berth.client.transport import EngineClient


class UsageError(BerthError):
    """Bad flags or arguments. exit_code is docker's: 125 for flag errors, 1 for argument-count errors."""

    def __init__(self, message: str, exit_code: int = 125, usage: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.usage = usage  # append the command's usage line, as cobra does for flag errors


class Ctx:
    def __init__(self, host: DaemonHost, environ: Mapping[str, str], stdout: TextIO | None = None,
                 stderr: TextIO | None = None, stdin: BinaryIO | None = None) -> None:
        self.host = host
        self.environ = environ
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.stdin = stdin or sys.stdin.buffer
        self._client: EngineClient | None = None

    @property
    def client(self) -> EngineClient:
        if self._client is None:
            # imported here, not at the top: `berth --version`, --help and usage errors never need the client
            from berth.client.transport import EngineClient

            client = EngineClient(self.host)
            try:
                client.ping()
            except Unavailable:
                # only now pay for subprocess & co: a daemon that answers never needs them
                from berth.client.autostart import ensure_daemon

                ensure_daemon(client, self.err, self.environ)
            self._client = client
        return self._client

    def out_binary(self) -> BinaryIO:
        self.out.flush()
        buf = getattr(self.out, "buffer", None)
        if buf is None:
            raise InvalidArgument("standard output cannot take binary data")
        return buf  # type: ignore[no-any-return]

    def out_is_terminal(self) -> bool:
        try:
            return self.out.isatty()
        except (AttributeError, ValueError):
            return False

    def stdin_is_terminal(self) -> bool:
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
