"""Developer tasks: ``uvx nox`` (or ``uv run nox``) runs tests, lint and typecheck.

Every session runs through ``uv run`` so it uses the project's locked environment.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = False


def uv_run(session: nox.Session, *args: str, group: str | None = None) -> None:
    extra = ("--group", group) if group else ()
    session.run("uv", "run", "--locked", *extra, *args, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (extra pytest arguments pass through: ``nox -s tests -- -k fastapi``)."""
    uv_run(session, "pytest", *session.posargs)


@nox.session
def services(session: nox.Session) -> None:
    """Only the tests against real PostgreSQL/Redis/RabbitMQ on loopback (``-m services``);
    with ``CI=true`` a service that is down fails them instead of skipping."""
    uv_run(session, "pytest", "-m", "services", *session.posargs)


@nox.session
def unit(session: nox.Session) -> None:
    """Everything except the services tests (no server needed)."""
    uv_run(session, "pytest", "-m", "not services", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    uv_run(session, "ruff", "check", "mimgw", "tests", "benchmarks", "noxfile.py")
    uv_run(session, "ruff", "format", "--check", "mimgw", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    uv_run(session, "mypy", "--strict", "mimgw")


@nox.session
def soak(session: nox.Session) -> None:
    """The long fault soak of tests/reliability (minutes; extra pytest arguments pass through)."""
    session.env["MIMGW_SOAK"] = "1"
    uv_run(session, "pytest", "tests/reliability", "-m", "soak", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings (broken links, missing pages) are errors."""
    uv_run(session, "mkdocs", "build", "--strict", *session.posargs, group="docs")


@nox.session
def bench(session: nox.Session) -> None:
    """The overhead benchmark (benchmarks/results.json), then bench_scale.py at 5,000
    messages, one request per message and in native batches (benchmarks/scale.json,
    scale_batch.json), if Redis and PostgreSQL are reachable."""
    args = session.posargs or ["--json", "benchmarks/results.json"]
    uv_run(session, "python", "benchmarks/bench_overhead.py", *args)
    # issue 13: singles vs raw httpx/aiohttp, CPU per send, batched bulk, RSS, ledger
    # bytes (benchmarks/throughput.json and the chart in docs/img/throughput.svg),
    # then import time and the write-ahead intent cost
    throughput = ["--json", "benchmarks/throughput.json", "--svg", "docs/img/throughput.svg"]
    uv_run(session, "python", "benchmarks/bench_throughput.py", *throughput)
    uv_run(session, "python", "benchmarks/bench_import.py")
    uv_run(session, "python", "benchmarks/bench_intents.py", "--sends", "500")
    # optional: the scale-out benchmark, when Redis and PostgreSQL answer on loopback
    import socket

    def up(port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    if up(6379) and up(5432):
        scale = ["--messages", "5000", "--json", "benchmarks/scale.json"]
        uv_run(session, "python", "benchmarks/bench_scale.py", *scale)
        # the same campaign with chunks in native batches (MimgwTasks' default)
        batched = ["--messages", "5000", "--batch", "--json", "benchmarks/scale_batch.json"]
        uv_run(session, "python", "benchmarks/bench_scale.py", *batched)
    else:
        session.log("bench_scale.py skipped: Redis (6379) or PostgreSQL (5432) not reachable")
