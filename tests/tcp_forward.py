"""A small TCP forwarder for tests: services bound to 127.0.0.1, reached from another address.

The multi-host test puts workers in network namespaces, where 127.0.0.1 is their own loopback; they
reach Postgres, RabbitMQ and Redis at the bridge address, and this forwards each connection there to
the service on the root namespace's loopback. Runs an asyncio loop in a thread of the test process.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class TcpForwarder:
    """Listens on `listen_host`, one free port per target; `ports[target_port]` says which."""

    def __init__(self, listen_host: str, target_host: str, target_ports: list[int]) -> None:
        self.listen_host, self.target_host, self.target_ports = listen_host, target_host, target_ports
        self.ports: dict[int, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-forwarder", daemon=True)
        self._servers: list[asyncio.Server] = []

    def __enter__(self) -> TcpForwarder:
        self._thread.start()
        for target in self.target_ports:
            server = asyncio.run_coroutine_threadsafe(self._serve(target), self._loop).result(timeout=10)
            self._servers.append(server)
            self.ports[target] = server.sockets[0].getsockname()[1]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()  # open connections: their pipes close both ends

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, target: int) -> asyncio.Server:
        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

        return await asyncio.start_server(forward, self.listen_host, 0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
