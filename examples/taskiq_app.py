"""A FastAPI app that queues SMS for the workers of examples/taskiq_worker.py.

    uvicorn examples.taskiq_app:app

``POST /sms`` queues one message (the ``Idempotency-Key`` header, if any, makes a retried
request the same message); ``POST /campaigns/{id}`` queues a campaign in chunks, keyed by
campaign and recipient, so posting it twice sends nothing twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Header
from pydantic import BaseModel

from examples.taskiq_worker import broker, tasks
from mimgw import Message


class Sms(BaseModel):
    to: str
    text: str


class Campaign(BaseModel):
    text: str
    recipients: list[str]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await broker.startup()
    yield
    await broker.shutdown()


app = FastAPI(lifespan=lifespan)


@app.post("/sms", status_code=202)
async def queue_sms(sms: Sms, idempotency_key: str | None = Header(default=None)) -> dict[str, str]:
    message = Message(to=sms.to, text=sms.text, idempotency_key=idempotency_key)
    return {"task_id": await tasks.enqueue(message)}


@app.post("/campaigns/{campaign_id}", status_code=202)
async def queue_campaign(campaign_id: str, campaign: Campaign) -> dict[str, object]:
    queued = await tasks.enqueue_campaign(campaign_id, campaign.recipients, text=campaign.text)
    return {"campaign": campaign_id, "messages": queued.messages, "chunks": queued.chunks}
