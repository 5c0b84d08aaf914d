"""CurveZMQ (RFC 26) for remote workers, authorized by ZAP (RFC 27) against a key directory.

The dispatcher's tcp endpoint, when `compute.curve_secret_key` and
`compute.curve_authorized_keys` are set, speaks CURVE only: the connection is encrypted and a
worker gets in only if its public key is in a certificate (`*.key`, as
`zmq.auth.create_certificates` writes them) in the authorized directory. The directory is
re-read whenever it changes (checked on every CURVE handshake and every second by the
dispatcher), so adding a key needs no restart, and removing one refuses that worker's next
handshake and drops it if it is connected.

Certificates are the ZeroMQ / czmq text format: `NAME.key` holds a public key,
`NAME.key_secret` the public and the secret key.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

from flashalpha.config import ConfigError

log = logging.getLogger(__name__)

#: pyzmq's ZAP handler: credentials providers by domain; "*" is the empty domain's. No ZAP
#: domain is set on the socket: libzmq asks ZAP about every CURVE handshake anyway, and with
#: none set the NULL endpoints (the local fleet's) never ask it.
_ANY_DOMAIN = "*"
#: Socket monitor events that end a handshake in failure, by the reason `status()` shows.
HANDSHAKE_FAILURES = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "no_detail",
}
#: Denied keys logged at most this often (a refused worker retries with backoff, an attacker
#: may not).
_DENIED_LOG_INTERVAL = 10.0


def _read_certificate(path: str | os.PathLike, what: str) -> tuple[bytes, bytes | None]:
    """(public, secret or None) of a certificate file, z85; ConfigError naming the path."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' does not exist or is not a file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as error:
        raise ConfigError(f"cannot read {what} '{path}': {error.strerror or error}") from None
    except ValueError:
        raise ConfigError(
            f"{what} '{path}' is not a CurveZMQ certificate (no public-key); create one with "
            "`flashalpha compute-keys`"
        ) from None
    for key in (public, secret):
        if key is None:
            continue
        try:
            valid = len(key) == 40 and len(z85.decode(key)) == 32
        except (ValueError, KeyError, IndexError):
            valid = False
        if not valid:
            raise ConfigError(f"{what} '{path}' holds a malformed key (expected 40 z85 chars)")
    return public, secret


def load_public_certificate(path: str | os.PathLike, what: str) -> bytes:
    """The z85 public key of a certificate (`NAME.key` or `NAME.key_secret`)."""
    return _read_certificate(path, what)[0]


def load_secret_certificate(path: str | os.PathLike, what: str) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys of a secret certificate (`NAME.key_secret`)."""
    public, secret = _read_certificate(path, what)
    if secret is None:
        raise ConfigError(
            f"{what} '{Path(path).expanduser()}' holds no secret-key: give the "
            "'.key_secret' file, not the public '.key'"
        )
    return public, secret


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """A worker's CURVE settings: the dispatcher's public key and its own key pair (z85)."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def load(cls, server_key: str | os.PathLike, key: str | os.PathLike) -> ClientKeys:
        server_public = load_public_certificate(server_key, "--curve-server-key")
        public, secret = load_secret_certificate(key, "--curve-key")
        return cls(server_public, public, secret)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


class AuthorizedKeys:
    """The authorized workers' public certificates (`*.key`) in one directory.

    `callback` is the ZAP credentials provider (pyzmq's `configure_curve_callback`): it runs on
    the authenticator's thread, re-reads the directory if it changed, and says whether a key
    is in it. `refresh` does the same from the dispatcher's loop. A certificate that cannot be
    read is skipped (and logged): it authorizes nobody.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory).expanduser()
        #: z85 public key -> certificate name (file stem).
        self.keys: dict[bytes, str] = {}
        self.loaded_ns = 0
        self.reloads = 0
        self.denied = 0
        self.last_denied: str | None = None
        self.errors: list[str] = []
        self._signature: object = None
        self._lock = threading.Lock()
        self._last_denied_log = 0.0

    def _scan(self) -> tuple[object, list[Path]]:
        """A signature of the directory's certificates (changes when any is added, removed,
        replaced or edited) and their paths."""
        entries = []
        paths = []
        with os.scandir(self.directory) as it:
            for entry in it:
                if entry.name.endswith(".key") and entry.is_file():
                    stat = entry.stat()
                    entries.append((entry.name, stat.st_ino, stat.st_mtime_ns, stat.st_size))
                    paths.append(Path(entry.path))
        return tuple(sorted(entries)), sorted(paths)

    def load_strict(self) -> None:
        """At start: any fault is a ConfigError naming the directory or file."""
        if not self.directory.is_dir():
            raise ConfigError(
                f"compute.curve_authorized_keys '{self.directory}' does not exist or is not a "
                "directory"
            )
        try:
            signature, paths = self._scan()
        except OSError as error:
            raise ConfigError(
                f"cannot read compute.curve_authorized_keys '{self.directory}': "
                f"{error.strerror or error}"
            ) from None
        keys = {}
        for path in paths:
            keys[load_public_certificate(path, "authorized worker certificate")] = path.stem
        with self._lock:
            self._install(signature, keys, [])
        if not keys:
            log.warning(
                "compute: no worker certificate (*.key) in %s: no remote worker can join until "
                "one is added",
                self.directory,
            )

    def _install(self, signature: object, keys: dict[bytes, str], errors: list[str]) -> None:
        self._signature = signature
        self.keys = keys
        self.errors = errors
        self.loaded_ns = time.time_ns()
        log.info("compute: authorized worker keys=%d directory=%s", len(keys), self.directory)

    def refresh(self) -> bool:
        """Re-read the directory if it changed; True if the keys were reloaded."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        try:
            signature, paths = self._scan()
        except OSError as error:
            # Fail closed: a directory that cannot be read authorizes nobody.
            if self._signature != "unreadable":
                message = f"cannot read '{self.directory}': {error.strerror or error}"
                log.error("compute: %s; no remote worker is authorized", message)
                self._install("unreadable", {}, [message])
                self.reloads += 1
                return True
            return False
        if signature == self._signature:
            return False
        keys, errors = {}, []
        for path in paths:
            try:
                keys[load_public_certificate(path, "authorized worker certificate")] = path.stem
            except ConfigError as error:
                errors.append(str(error))
                log.error("compute: %s; skipped", error)
        self._install(signature, keys, errors)
        self.reloads += 1
        return True

    def allows(self, key: bytes) -> bool:
        return key in self.keys

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: is this z85 client key authorized? (On the authenticator's thread.)"""
        with self._lock:
            self._refresh_locked()
            allowed = key in self.keys
            if not allowed:
                self.denied += 1
                self.last_denied = f"{time.strftime('%H:%M:%S')} {key.decode('ascii', 'replace')}"
                now = time.monotonic()
                if now - self._last_denied_log >= _DENIED_LOG_INTERVAL:
                    self._last_denied_log = now
                    log.warning(
                        "compute: refused a worker whose CURVE key %s is not in %s "
                        "(denied so far: %d)",
                        key.decode("ascii", "replace"),
                        self.directory,
                        self.denied,
                    )
        return allowed

    def name_of(self, key: bytes) -> str | None:
        return self.keys.get(key)


class CurveServer:
    """The dispatcher's CURVE side: its key pair, the authorized keys, the ZAP handler.

    The handler is pyzmq's `ThreadAuthenticator` on the dispatcher's own context: ZAP requests
    are answered on a thread of their own, so a handshake never waits for the daemon's loop
    (busy with ticks) and a flood of handshakes costs that loop nothing.
    """

    def __init__(self, secret_key: str, authorized_keys: str) -> None:
        self.public, self.secret = load_secret_certificate(secret_key, "compute.curve_secret_key")
        self.authorized = AuthorizedKeys(authorized_keys)
        self.authorized.load_strict()
        self._authenticator = None

    def start(self, context: zmq.Context) -> None:
        """Install the ZAP handler on `context`; before any CURVE endpoint is bound (without
        a handler libzmq lets every client key in)."""
        from zmq.auth.thread import ThreadAuthenticator

        authenticator = ThreadAuthenticator(context, log=logging.getLogger("flashalpha.zap"))
        authenticator.start()
        authenticator.configure_curve_callback(_ANY_DOMAIN, self.authorized)
        self._authenticator = authenticator

    def secure(self, sock: zmq.Socket, on: bool) -> None:
        """Endpoints bound from now on speak CURVE (on) or nothing (NULL, off): libzmq takes
        a copy of the socket's security options for each endpoint when it is bound."""
        if on:
            sock.curve_secretkey = self.secret
            sock.curve_publickey = self.public
            sock.curve_server = True
        else:
            sock.curve_server = False  # back to the NULL mechanism

    def stop(self) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def status(self) -> dict:
        authorized = self.authorized
        return {
            "authorized_keys": len(authorized.keys),
            "authorized_dir": str(authorized.directory),
            "key_reloads": authorized.reloads,
            "keys_loaded_ns": authorized.loaded_ns,
            "key_errors": list(authorized.errors),
            "denied_keys": authorized.denied,
            "last_denied_key": authorized.last_denied,
        }


def create_keys(directory: str | os.PathLike, workers: list[str]) -> dict[str, list[Path]]:
    """Certificates for a dispatcher and its workers under `directory`.

    Writes `server.key` / `server.key_secret` (kept if they exist: the workers already hold
    that public key), `NAME.key` / `NAME.key_secret` for each worker (refused if they exist)
    and a copy of each worker's public `NAME.key` in `authorized/`. Secret files are 0600.
    """
    root = Path(directory).expanduser()
    authorized = root / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    for name in workers:
        if not name or "/" in name or name.startswith(".") or name == "server":
            raise ConfigError(f"worker name '{name}' is not a plain file name (nor 'server')")
        for path in (root / f"{name}.key", root / f"{name}.key_secret"):
            if path.exists():
                raise ConfigError(f"'{path}' exists; remove it or choose another --worker name")
    made: dict[str, list[Path]] = {"server": [], "workers": [], "authorized": []}
    old_umask = os.umask(0o077)
    try:
        if not (root / "server.key_secret").exists():
            made["server"] = [Path(p) for p in zmq.auth.create_certificates(root, "server")]
            (root / "server.key").chmod(0o644)
        for name in workers:
            public, secret = zmq.auth.create_certificates(root, name)
            Path(public).chmod(0o644)
            copy = authorized / f"{name}.key"
            copy.write_bytes(Path(public).read_bytes())
            copy.chmod(0o644)
            made["workers"] += [Path(public), Path(secret)]
            made["authorized"].append(copy)
    finally:
        os.umask(old_umask)
    return made
