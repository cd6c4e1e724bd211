"""A TCP relay between the gateway and Asterisk's AMI, whose link the test can break the
ways a network does while both ends keep running: cut (both ends see the link die), freeze
(the link stays open and says nothing: a silent peer), or pass everything but the login's
secret (Asterisk itself refuses the re-login)."""
from __future__ import annotations

import asyncio
import contextlib
import re

SECRET = re.compile(rb"(?im)^(Secret:) *[^\r\n]*")


class Relay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.wrong_secret: bytes | None = None

    def freeze(self) -> None:
        """Hold every byte, on open links and new ones, until ``thaw``."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Drop every connection and refuse new ones until ``start`` (same port)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()                 # no new connections
        for writer in list(self._writers):
            writer.transport.abort()       # the blip: both ends see the link die
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            # (since Python 3.12 this also waits for the connections, aborted above)
            await asyncio.wait_for(server.wait_closed(), 5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for src, dst, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst, upstream))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                if upstream and self.wrong_secret is not None:
                    data = SECRET.sub(rb"\1 " + self.wrong_secret, data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.transport.abort()
            self._writers.discard(dst)
