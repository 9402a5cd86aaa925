"""A minimal keep-alive HTTP/1.1 server on 127.0.0.1 answering every request with a
MiMSMS v4 success body (run as its own process so its CPU is not the client's).

    python benchmarks/v4_loopback.py PORT
"""

from __future__ import annotations

import asyncio
import itertools
import sys

_IDS = itertools.count(1)


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            body = (
                b'{"statusCode":"200","status":"Success","trxnId":"T%d",'
                b'"responseResult":"SMS Send Successfuly"}' % next(_IDS)
            )
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
