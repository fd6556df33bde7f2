"""The master key in Vault's transit engine: data keys are wrapped and unwrapped by Vault, never here.

A wrapped data key is Vault's ciphertext string (``vault:v<n>:<base64>``) as ASCII bytes, so the
key version that wrapped it is readable without asking Vault. Every call takes a batch and sends it
in chunks of ``CHUNK`` (400) items, one request per chunk (``batch_input``).

The hub's Vault policy needs ``update`` on ``<mount>/encrypt/<key>``, ``<mount>/decrypt/<key>`` and
``<mount>/rewrap/<key>``, nothing more: the hub never creates the transit key (``saleshub keys
init``, run by an administrator, does) and never rotates it (``saleshub keys rotate``, by an
administrator whose policy adds ``update`` on ``<mount>/keys/<key>/rotate`` and ``read`` on
``<mount>/keys/<key>``). Without that ``read``, the newest version is the one a fresh wrap gets,
so ``saleshub keys rewrap`` and ``keys status`` work with the hub's own policy.

Errors: an unreachable, sealed or failing Vault is ``KeyServiceUnavailableError`` (retriable); a
refusal (403), a missing key or an item Vault rejects is ``KeyServiceError`` naming the mount, the
key and the capability the policy lacks.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import hvac.exceptions
from typing_extensions import override

from saleshub.errors import (
    KeyServiceError,
    KeyServiceUnavailableError,
    SecretStoreError,
    SecretStoreUnavailableError,
)
from saleshub.platform.keys import MasterKey, new_data_key
from saleshub.platform.vault_session import VaultSession

__all__ = ["CHUNK", "VaultTransitKey", "transit_policy"]

#: Items per request. Vault and OpenBao refuse a JSON body of more than 1,000 strings by default
#: (the listener's ``max_request_json_strings``), and each item is two (its field name and value).
CHUNK: Final = 400

_T = TypeVar("_T")


def transit_policy(mount: str, key: str, *, admin: bool = False) -> str:
    """The Vault policy (HCL) the hub needs on its transit key; ``admin``: also init and rotate."""
    lines = [
        f'path "{mount}/{op}/{key}" {{ capabilities = ["update"] }}'
        for op in ("encrypt", "decrypt", "rewrap")
    ]
    if admin:
        lines += [
            f'path "{mount}/keys/{key}" {{ capabilities = ["create", "read", "update"] }}',
            f'path "{mount}/keys/{key}/rotate" {{ capabilities = ["update"] }}',
        ]
    return "\n".join(lines)


def _words(exc: hvac.exceptions.VaultError) -> str:
    errors = getattr(exc, "errors", None)
    text = "; ".join(str(error) for error in errors) if errors else type(exc).__name__
    return " ".join(text.split())[:200]


class VaultTransitKey(MasterKey):
    """A named key of Vault's transit engine, used through the secret store's logged-in session.

    The session belongs to the secret store (its keeper renews the token); ``close`` leaves it open.
    """

    scheme = "vault"

    def __init__(
        self, session: VaultSession, mount: str = "transit", key: str = "saleshub-personal-data"
    ) -> None:
        self.session = session
        self.mount = mount.strip("/")
        self.key = key
        self.name = f"vault:{self.mount}/{self.key}"

    # -- the one place Vault's answers become the hub's errors -----------------------------------

    def _path(self, operation: str) -> str:
        """The API path of ``operation`` (``encrypt`` … ``keys``, ``rotate``) on this key."""
        if operation == "keys":
            return f"{self.mount}/keys/{self.key}"
        if operation == "rotate":
            return f"{self.mount}/keys/{self.key}/rotate"
        return f"{self.mount}/{operation}/{self.key}"

    def _call(self, what: str, operation: str, capability: str, request: Callable[[], _T]) -> _T:
        path = self._path(operation)
        where = f"the transit key {self.key!r} at mount {self.mount!r} of Vault at {self.session.address}"

        def translated() -> _T:
            # Refusals become KeyServiceError here, inside the session's translation, which then
            # only turns what is left (unreachable, sealed, 5xx) into the unavailable error.
            try:
                return request()
            except hvac.exceptions.Forbidden as exc:
                raise KeyServiceError(
                    f"Vault refused {what} with {where} to the hub's {self.session.login_method} "
                    f"({_words(exc)}): its policy needs capability {capability!r} on {path}"
                    + (
                        ", and the key must exist (an administrator creates it with `saleshub keys init`)"
                        if operation == "encrypt"
                        else ""
                    )
                ) from None
            except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath) as exc:
                body = exc.json if isinstance(exc.json, dict) else {}
                items = (body.get("data") or {}).get("batch_results")
                if items:  # items Vault refused (an altered ciphertext …): 400 with each item's error
                    self._results(body, what, len(items))
                words = _words(exc)
                missing = "not found" in words or isinstance(exc, hvac.exceptions.InvalidPath)
                raise KeyServiceError(
                    f"{where} does not exist ({words}); an administrator creates it with `saleshub keys init`"
                    if missing
                    else f"Vault refused {what} with {where} ({words})"
                ) from None

        try:
            return self.session.call(what, path, translated)
        except SecretStoreUnavailableError as exc:
            raise KeyServiceUnavailableError(f"{exc} ({where})") from None
        except SecretStoreError as exc:  # any other refusal (a token no longer valid …)
            raise KeyServiceError(f"{exc} ({where})") from None

    @staticmethod
    def _results(answer: Any, what: str, count: int) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = list((answer or {}).get("data", {}).get("batch_results") or [])
        if len(results) != count:
            raise KeyServiceError(f"Vault answered {len(results)} results for {count} items while {what}")
        failed = [(i, r["error"]) for i, r in enumerate(results) if r.get("error")]
        if failed:
            first, error = failed[0]
            raise KeyServiceError(
                f"Vault refused {len(failed)} of {count} items while {what} (item {first}: "
                f"{' '.join(str(error).split())[:200]})"
            )
        return results

    # -- the port ----------------------------------------------------------------------------------

    @override
    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        wrapped: list[bytes] = []
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            batch = [{"plaintext": base64.b64encode(key).decode("ascii")} for key in chunk]

            def request(batch: list[dict[str, str]] = batch) -> Any:
                return self.session.client.secrets.transit.encrypt_data(
                    self.key, batch_input=batch, mount_point=self.mount
                )

            answer = self._call("wrapping data keys", "encrypt", "update", request)
            results = self._results(answer, "wrapping data keys", len(chunk))
            wrapped.extend(str(r["ciphertext"]).encode("ascii") for r in results)
        return wrapped

    @override
    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        keys: list[bytes] = []
        for start in range(0, len(wrapped), CHUNK):
            chunk = wrapped[start : start + CHUNK]
            batch = [{"ciphertext": self._ciphertext(item)} for item in chunk]

            def request(batch: list[dict[str, str]] = batch) -> Any:
                return self.session.client.secrets.transit.decrypt_data(
                    self.key, batch_input=batch, mount_point=self.mount
                )

            answer = self._call("unwrapping data keys", "decrypt", "update", request)
            results = self._results(answer, "unwrapping data keys", len(chunk))
            keys.extend(base64.b64decode(r["plaintext"]) for r in results)
        return keys

    @override
    def rewrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        rewrapped: list[bytes] = []
        for start in range(0, len(wrapped), CHUNK):
            chunk = wrapped[start : start + CHUNK]
            batch = [{"ciphertext": self._ciphertext(item)} for item in chunk]

            def request(batch: list[dict[str, str]] = batch) -> Any:
                return self.session.client.secrets.transit.rewrap_data(  # type: ignore[no-untyped-call]
                    self.key, ciphertext=None, batch_input=batch, mount_point=self.mount
                )

            answer = self._call("rewrapping data keys", "rewrap", "update", request)
            results = self._results(answer, "rewrapping data keys", len(chunk))
            rewrapped.extend(str(r["ciphertext"]).encode("ascii") for r in results)
        return rewrapped

    @override
    def rotate(self) -> int:
        def request() -> Any:
            return self.session.client.secrets.transit.rotate_key(self.key, mount_point=self.mount)  # type: ignore[no-untyped-call]

        self._call("rotating", "rotate", "update", request)
        return self.newest_version()

    @override
    def newest_version(self) -> int:
        def request() -> Any:
            try:
                return self.session.client.secrets.transit.read_key(self.key, mount_point=self.mount)  # type: ignore[no-untyped-call]
            except hvac.exceptions.Forbidden:
                return None

        answer = self._call("reading the key's versions", "keys", "read", request)
        if answer is None:
            # The hub's policy does not read the key: a fresh wrap carries the version that wraps now.
            return self.version(self.wrap([new_data_key()])[0])
        return int(answer["data"]["latest_version"])

    @override
    def create(self) -> bool:
        """Create the key (``aes256-gcm96``, not exportable) unless it exists; whether it was created."""

        def exists() -> Any:
            try:
                return self.session.client.secrets.transit.read_key(self.key, mount_point=self.mount)  # type: ignore[no-untyped-call]
            except hvac.exceptions.InvalidPath:
                return None

        if self._call("reading the key", "keys", "read", exists) is not None:
            return False

        def request() -> Any:
            return self.session.client.secrets.transit.create_key(  # type: ignore[no-untyped-call]
                self.key, key_type="aes256-gcm96", exportable=False, mount_point=self.mount
            )

        self._call("creating the key", "keys", "create", request)
        return True

    @override
    def version(self, wrapped: bytes) -> int:
        scheme, _, rest = wrapped.partition(b":v")
        number, _, _ = rest.partition(b":")
        if scheme != b"vault" or not number.isdigit():
            raise KeyServiceError(f"a wrapped data key is not one of {self.name}'s (not vault:v<n>:…)")
        return int(number)

    def _ciphertext(self, wrapped: bytes) -> str:
        self.version(wrapped)  # refuses another master key's wrapping before Vault is asked
        return wrapped.decode("ascii")

    def __repr__(self) -> str:
        return f"VaultTransitKey({self.name!r}, {self.session.address})"
