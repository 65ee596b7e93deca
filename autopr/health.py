"""The /health endpoint: is the database reachable, and does its schema fit the running code?

``GET /health`` answers 200 when the database answers and every table and column this code
maps exists, and 503 with a reason otherwise. A database at a revision this code does not know
(a newer release's migration ran first) is healthy when compatible: that is the normal state
between a migration and the deploy that follows it. Run it with ``python -m autopr.health``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from autopr.config import ConfigurationError, Settings, get_settings
from autopr.database import make_engine
from autopr.database.schema import (
    code_heads,
    database_revision,
    is_known_revision,
    schema_problems,
)
from autopr_migrate.masking import mask_secrets

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def check_health(engine: Engine) -> tuple[int, dict[str, Any]]:
    """Inspect the database once; return the HTTP status and the JSON body."""
    heads = code_heads()
    body: dict[str, Any] = {"code_head": ",".join(heads)}
    try:
        with engine.connect() as connection:
            revision = database_revision(connection)
            problems = schema_problems(connection)
    except DBAPIError as exc:
        if exc.connection_invalidated or _is_connect_failure(exc):
            return 503, _unavailable(body, "database unreachable", exc)
        return 503, _unavailable(body, "database error", exc)
    except SQLAlchemyError as exc:
        return 503, _unavailable(body, "database error", exc)
    body["revision"] = revision
    body["revision_known"] = revision is not None and is_known_revision(revision)
    if problems:
        return 503, {"status": "unavailable", "reason": "; ".join(problems), **body}
    return 200, {"status": "ok", **body}


def _is_connect_failure(exc: DBAPIError) -> bool:
    # A statement never ran: the failure happened while opening the connection.
    return exc.statement is None


def _unavailable(body: dict[str, Any], reason: str, exc: Exception) -> dict[str, Any]:
    """A fixed reason for the public body; the driver's own words go to the server log only."""
    orig = getattr(exc, "orig", None) or exc
    detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    logger.warning("health check failed: %s: %s", reason, mask_secrets(detail))
    return {"status": "unavailable", "reason": reason, **body}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the health app for ``settings`` (default: read from the environment)."""
    settings = settings or get_settings()
    timeout = settings.health_timeout
    # The database's own limits sit above the response deadline: the caller sees the deadline,
    # and a worker thread stuck on a lock is still freed soon after.
    engine = make_engine(
        settings.database_url,
        read_only=True,
        connect_timeout=timeout,
        statement_timeout=2 * timeout,
        pool_size=2,
        max_overflow=2,
        pool_timeout=timeout,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="AutoPR Engine", lifespan=lifespan)
    app.state.engine = engine

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            status, body = await asyncio.wait_for(
                asyncio.to_thread(check_health, engine), timeout=timeout
            )
        except TimeoutError:
            status, body = (
                503,
                {
                    "status": "unavailable",
                    "reason": f"database did not answer within {timeout:g} s",
                    "code_head": ",".join(code_heads()),
                },
            )
        return JSONResponse(body, status_code=status)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autopr.health", description="Serve AutoPR Engine's /health endpoint."
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds a check may take (default: AUTOPR_HEALTH_TIMEOUT or 5)",
    )
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.timeout is not None:
        if args.timeout <= 0:
            parser.error("--timeout must be a positive number of seconds")
        settings = Settings(database_url=settings.database_url, health_timeout=args.timeout)

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
