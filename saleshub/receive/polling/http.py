"""The HTTP side of polling: one source's pages over httpx, politely and patiently.

``SourceClient`` asks a source for pages through its adapter's ``SourceApi`` (which builds each
request and reads each answer) and owns everything in between:

* one ``httpx.Client`` per client: keep-alive connections, a timeout per request (connect, read,
  write and pool, each ``timeout_seconds``), credentials from the secret store (``source/<system>``:
  Basic with ``username``/``password``, or a bearer ``token``), read when the client is built so a
  rotation applies from the next run;
* a rate limit: at most ``requests_per_second`` request starts per second;
* retries (tenacity) on connection errors, timeouts, 5xx and 429, at most ``attempts`` tries, waiting
  exponentially longer (``backoff_seconds`` doubling up to ``max_backoff_seconds``, with jitter), or
  exactly what the source's ``Retry-After`` asks (seconds or an HTTP date); a ``Retry-After`` longer
  than ``max_backoff_seconds`` ends the tries at once (the next run comes later), with the wait the
  source asked for in the error (so ``saleshub poll status`` shows it). Never on other 4xx: a
  request carrying a continuation token that the source answers with one of the adapter's
  ``token_expired_statuses`` (410) raises ``SourceTokenExpiredError`` (the poller lists again from
  its time cursor), any other 4xx raises ``SourceRefusedError``;
* httpx's own exceptions are translated here, once (``SourceUnavailableError``), so nothing above
  sees httpx's.

``pages(start, window)`` and ``records(window)`` read a whole window ("records updated in
[since, until)"), for readers other than the poller (reconciliation's manifest reader).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from typing_extensions import override

from adapters.source import Cursor, Page, PageRequest, SourceApi, SourceRecord, Window
from saleshub.errors import (
    MissingSecretError,
    SourceRefusedError,
    SourceTokenExpiredError,
    SourceUnavailableError,
)
from saleshub.platform.secrets import SecretStore
from saleshub.platform.settings import SystemPollSettings

__all__ = ["BearerAuth", "RateLimit", "SourceClient", "retry_after_seconds", "source_auth"]

log = logging.getLogger(__name__)


class RateLimit:
    """At most ``per_second`` starts per second: each ``wait`` returns no sooner than its turn."""

    def __init__(self, per_second: float, *, sleep: Callable[[float], object] = time.sleep) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep

    def wait(self) -> None:
        """Block until the next request may start."""
        with self._lock:
            now = time.monotonic()
            turn = max(self._next, now)
            self._next = turn + self.interval
        if turn > now:
            self._sleep(turn - now)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` (the token masked in any ``repr``)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(token=**********)"

    @override
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def source_auth(system: str, settings: SystemPollSettings, secrets: SecretStore) -> httpx.Auth | None:
    """The credentials of ``system``'s source API from the secret store, per ``settings.auth``."""
    name = f"source/{system}"
    if settings.auth == "none":
        return None
    if settings.auth == "bearer":
        return BearerAuth(secrets.get(f"{name}/token").get_secret_value())
    credentials = secrets.credentials(name)
    if credentials is None:
        raise MissingSecretError(f"{name}/username", secrets.where(f"{name}/username"))
    return httpx.BasicAuth(credentials.username, credentials.password.get_secret_value())


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: a number of seconds or an HTTP date; ``None`` if absent or bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _AskedTooLong(stop_base):
    """Stop retrying when the source's ``Retry-After`` asks for longer than ``limit`` seconds."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        asked = exc.retry_after if isinstance(exc, SourceUnavailableError) else None
        return asked is not None and asked > self.limit


class SourceClient:
    """Pages of one source system over HTTP (see the module docstring)."""

    def __init__(
        self,
        api: SourceApi,
        settings: SystemPollSettings,
        auth: httpx.Auth | None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.api, self.settings, self.system = api, settings, api.system
        self.http = httpx.Client(
            base_url=settings.base_url,
            auth=auth,
            timeout=httpx.Timeout(settings.timeout_seconds),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=60),
            headers={"User-Agent": "saleshub-poller"},
            transport=transport,
        )
        self.rate = RateLimit(settings.requests_per_second, sleep=sleep)
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_seconds,
            max=settings.max_backoff_seconds,
            jitter=settings.backoff_seconds,
        )

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def page(self, cursor: Cursor, window: Window) -> Page:
        """The page after ``cursor`` within ``window`` (retried as the module docstring says)."""
        request = PageRequest()
        self.api.update_request(request, cursor, window)
        retrying = Retrying(
            retry=retry_if_exception_type(SourceUnavailableError),
            wait=self._wait,
            stop=stop_any(
                stop_after_attempt(self.settings.attempts), _AskedTooLong(self.settings.max_backoff_seconds)
            ),
            sleep=self._pause,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            response = retrying(self._get, request, cursor.token is not None)
        except SourceUnavailableError as exc:
            limit = self.settings.max_backoff_seconds
            if exc.retry_after is None or exc.retry_after <= limit:
                raise
            raise SourceUnavailableError(
                self.system,
                f"{exc.reason}; it asked for Retry-After {exc.retry_after:.0f} s, beyond "
                f"max_backoff_seconds ({limit:g} s): the next run asks again",
                status=exc.status,
                retry_after=exc.retry_after,
            ) from exc
        return self.api.update_state(response, cursor, window)

    def pages(self, start: Cursor, window: Window) -> Iterator[Page]:
        """Every page from ``start`` to the end of ``window``."""
        cursor = start
        while True:
            page = self.page(cursor, window)
            yield page
            if not page.has_more:
                return
            cursor = page.cursor

    def records(self, window: Window) -> Iterator[SourceRecord]:
        """Every record changed in ``window`` (``[since, until)``), page after page."""
        for page in self.pages(self.api.start(None, window), window):
            yield from page.records

    def _get(self, request: PageRequest, with_token: bool) -> httpx.Response:
        self.rate.wait()
        path = self.api.path
        try:
            response = self.http.get(path, params=request.params, headers=request.headers)
        except httpx.TimeoutException as exc:
            raise SourceUnavailableError(
                self.system,
                f"{path}: no answer within {self.settings.timeout_seconds:g} s ({type(exc).__name__})",
            ) from exc
        except httpx.TransportError as exc:
            raise SourceUnavailableError(self.system, f"{path}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise SourceUnavailableError(
                self.system,
                f"{path} answered {status} {response.reason_phrase}",
                status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if with_token and status in self.api.token_expired_statuses:
            raise SourceTokenExpiredError(self.system, status, path)
        if status >= 300:
            raise SourceRefusedError(self.system, status, path, response.reason_phrase)
        return response

    def _pause(self, seconds: float) -> None:
        self._sleep(seconds)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, SourceUnavailableError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s (try %d of %d); again in %.1f s", exc, state.attempt_number, self.settings.attempts, wait
        )
