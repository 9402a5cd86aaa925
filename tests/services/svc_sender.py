"""A sender process for the service tests: Gateway.from_settings() (MIMGW_* environment),
waits until the epoch time argv[1], sends argv[2] messages (texts prefixed argv[3]) and
prints a JSON summary: each outcome's error kind (null when accepted) and the health."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mimgw import Gateway
from mimgw.errors import AllProvidersFailedError, ProviderError


def _kind(outcome: object) -> str | None:
    if isinstance(outcome, AllProvidersFailedError) and outcome.last is not None:
        return outcome.last.kind.value
    if isinstance(outcome, ProviderError):
        return outcome.kind.value
    return None if not isinstance(outcome, Exception) else type(outcome).__name__


async def main(start: float, count: int, tag: str) -> None:
    async with Gateway.from_settings() as gateway:
        await asyncio.sleep(max(0.0, start - time.time()))
        result = await gateway.send_bulk(
            [(f"0171{i:07d}", f"{tag} {i}") for i in range(count)], concurrency=8, batch=False
        )
        errors = [str(o) for o in result.outcomes if isinstance(o, Exception)][:3]
        summary = {
            "kinds": [_kind(o) for o in result.outcomes],
            "errors": errors,
            "health": gateway.health(),
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
