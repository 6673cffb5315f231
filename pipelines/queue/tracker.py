"""The queue's bookkeeping in Redis beside Celery's own keys: attempts per document, what is running, what finished.

Workers and the writer both write here; `lgd status` reads it. Everything is keyed by the
document's input checksum and holds no patient data: no file names (they name the patient), no text.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

QUEUE = "lgd-digitise"  # Celery's queue, a Redis list of that name
TASK = "lgd.digitise"
PREFIX = "lgd:"
MAX_EVENTS = 100_000  # finished documents kept for status (a day or two of a bureau's work)
ATTEMPTS_TTL = 7 * 24 * 3600


def safe_url(url: str) -> str:
    """The broker URL fit to print: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_url(url: str) -> str:
    """A Redis broker URL (redis://HOST:PORT/N, rediss:// for TLS), or LgdError naming what is wrong."""
    from pipelines.errors import ExitCode, LgdError

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise LgdError(f"--queue {safe_url(url)!r} is not a Redis URL; give redis://HOST:PORT/N "
                       "(e.g. redis://localhost:6379/0, or rediss:// for TLS)", ExitCode.usage, "usage")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"database {db!r} is not a number")
    except ValueError as e:
        raise LgdError(f"--queue {safe_url(url)!r}: {e}", ExitCode.usage, "usage") from None
    return url


class Tracker:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        import redis  # only for the queue: plain lgd never needs it

        self.url = url
        self.redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                          decode_responses=True)
        self.errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

    def reachable(self) -> bool:
        try:
            return bool(self.redis.ping())
        except self.errors:
            return False

    # -- documents ---------------------------------------------------------------------
    def attempt(self, key: str) -> int:
        """Count one more delivery of `key` to a worker; the count survives the worker dying."""
        name = f"{PREFIX}attempts:{key}"
        pipe = self.redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, ATTEMPTS_TTL)
        return int(pipe.execute()[0])

    def uncount(self, key: str) -> None:
        """Take back one attempt: the delivery failed for the worker's reasons, not the document's."""
        self.redis.decr(f"{PREFIX}attempts:{key}")

    def reset_attempts(self, keys: list[str]) -> None:
        if keys:
            self.redis.delete(*(f"{PREFIX}attempts:{k}" for k in keys))

    def running(self, key: str, worker: str) -> None:
        self.redis.hset(f"{PREFIX}running", key, json.dumps({"worker": worker, "started": time.time()}))

    def finished(self, key: str, event: dict[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.hdel(f"{PREFIX}running", key)
        pipe.lpush(f"{PREFIX}events", json.dumps(event))
        pipe.ltrim(f"{PREFIX}events", 0, MAX_EVENTS - 1)
        if event.get("outcome") != "lost":
            pipe.delete(f"{PREFIX}attempts:{key}")
        pipe.execute()

    # -- batches -----------------------------------------------------------------------
    def open_batch(self, batch: str, store: str, total: int) -> None:
        self.redis.hset(f"{PREFIX}batch:{batch}", mapping={"store": store, "total": total, "at": time.time()})
        self.redis.expire(f"{PREFIX}batch:{batch}", ATTEMPTS_TTL)

    def batch_store(self, batch: str) -> str | None:
        return self.redis.hget(f"{PREFIX}batch:{batch}", "store")

    def batch_known(self, batch: str) -> bool:
        """False once the broker lost its data (restarted without persistence): resubmit what is pending."""
        return bool(self.redis.exists(f"{PREFIX}batch:{batch}"))

    # -- status ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        pipe = self.redis.pipeline()
        pipe.llen(QUEUE)
        pipe.hgetall(f"{PREFIX}running")
        pipe.lrange(f"{PREFIX}events", 0, MAX_EVENTS - 1)
        queued, running, events = pipe.execute()
        return {"queued": int(queued), "running": {k: json.loads(v) for k, v in running.items()},
                "events": [json.loads(e) for e in events]}
