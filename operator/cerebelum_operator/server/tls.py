"""The engine's TLS files, reread when they change so a renewed certificate is served at once.

cert-manager renews the Secret before the certificate expires and the kubelet swaps the mounted
files (a `..data` symlink points to the new ones); the engine must serve the new pair on new
connections without a restart. grpcio asks a fetcher for the configuration on every handshake:
ours compares the files' stat (of the resolved files, so a swapped symlink counts) with the last
one and rereads only when it differs. A pair that cannot be read, or whose key does not match its
certificate (half written, or one file replaced before the other), keeps the previous
configuration and is reported once; handshakes never fail because of it. The web UI's HTTPS
(`HttpsCertificate`) follows the same files the same way, from Python's `ssl` SNI callback, which
runs on every handshake (with or without a server name) and may swap the connection's context.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import grpc

__all__ = ["CertificateReloader", "HttpsCertificate", "PeerTls", "TlsFiles"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# (st_ino, st_mtime_ns, st_size) of each file, certificate, key and client CA, in that order.
Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """PEM files for the gRPC endpoint; with ``client_ca`` clients must present a certificate too."""

    certificate: Path
    private_key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that follow the files: a renewed pair is served on new connections."""
        return CertificateReloader(self).credentials()

    def stamp(self) -> Stamp:
        """The files' identity and version; `os.stat` follows symlinks, so a swapped `..data` shows."""
        return tuple(_stat(path) for path in (self.certificate, self.private_key, self.client_ca))

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        """The files read and checked (the key must match the certificate); OSError if they are not usable."""
        try:
            certificate, key = self.certificate.read_bytes(), self.private_key.read_bytes()
            client_ca = self.client_ca.read_bytes() if self.client_ca is not None else None
        except OSError as exc:
            raise OSError(f"cannot read the TLS files: {exc}") from None
        _check(self, client_ca)
        return grpc.ssl_server_certificate_configuration([(key, certificate)], root_certificates=client_ca)


@dataclass(frozen=True, kw_only=True)
class PeerTls:
    """How a replica reaches the others when they serve TLS (a call forwarded to a shard's owner).

    ``ca`` verifies them; ``server_name`` is the name their certificate carries (the Service's: a
    replica is reached at its pod IP, which no certificate names). When the replicas require client
    certificates, a replica presents its own pair (``certificate``, ``private_key``). The files are
    read for each new channel to a replica, so a renewed pair is used from the next one.
    """

    ca: Path
    server_name: str | None = None
    certificate: Path | None = None
    private_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("a replica's client certificate needs both its certificate and its key")
        if self.server_name is not None and not 0 < len(self.server_name) <= 253:
            raise ValueError("the replicas' server name must be 1 to 253 characters long")

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the files as they are now; OSError naming them if unreadable."""
        try:
            ca = self.ca.read_bytes()
            pair = (
                (self.private_key.read_bytes(), self.certificate.read_bytes())
                if self.certificate is not None and self.private_key is not None
                else (None, None)
            )
        except OSError as exc:
            raise OSError(f"cannot read the replicas' TLS files: {exc}") from None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=pair[0], certificate_chain=pair[1])

    def options(self) -> list[tuple[str, str]]:
        """The channel options that check the replicas' certificate against ``server_name``."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name), ("grpc.default_authority", self.server_name)]


class _Follower(Generic[T]):
    """What `build` makes of the files, made again when their stamp changes and they are usable.

    Cheap when nothing changed (three `stat` calls); `fetch` never raises, since a failure there
    would fail a handshake: files that are not usable keep the previous result, with one warning
    for each version of them that is not.
    """

    def __init__(self, files: TlsFiles, build: Callable[[], T]) -> None:
        self.files = files
        self._build = build
        self._lock = threading.Lock()
        self._stamp = files.stamp()
        self.initial = build()
        if files.stamp() != self._stamp:
            # Replaced while being read: look again on the first connection.
            self._stamp = ()
        self._refused: Stamp | None = None

    def fetch(self) -> T | None:
        """A new result if the files changed and are usable, else None (keep serving the last)."""
        try:
            stamp = self.files.stamp()
            if stamp == self._stamp:
                return None
            # Another handshake is rereading them: this one keeps the current pair.
            if not self._lock.acquire(blocking=False):
                return None
            try:
                return self._reload(stamp)
            finally:
                self._lock.release()
        except Exception:  # an exception here would fail the handshake
            log.exception("checking the TLS files failed; serving the previous certificate")
            return None

    def _reload(self, stamp: Stamp) -> T | None:
        if stamp == self._stamp:
            return None
        try:
            fresh = self._build()
        except OSError as exc:
            if stamp != self._refused:
                self._refused = stamp
                log.warning("TLS files changed but are not usable (%s); serving the previous certificate", exc)
            return None
        if self.files.stamp() != stamp:
            return None  # replaced while being read: the next connection rereads them
        self._stamp, self._refused = stamp, None
        log.info("TLS certificate reloaded from %s", self.files.certificate)
        return fresh


class CertificateReloader(_Follower[grpc.ServerCertificateConfiguration]):
    """The certificate-configuration fetcher grpcio calls on each new connection."""

    def __init__(self, files: TlsFiles) -> None:
        super().__init__(files, files.configuration)

    def credentials(self) -> grpc.ServerCredentials:
        # grpcio's stubs say the fetcher returns a configuration; its documentation says None is "unchanged".
        return grpc.dynamic_ssl_server_credentials(
            self.initial,
            self.fetch,  # type: ignore[arg-type]
            require_client_authentication=self.files.client_ca is not None,
        )


class HttpsCertificate:
    """An `ssl.SSLContext` for the web UI that serves the files' current pair on each new connection.

    The context handed to the HTTP server stays the same object; its SNI callback, run on every
    handshake, asks the follower for a new context when the files changed and moves this
    connection (and the later ones) to it. Client certificates are not asked for: browsers do not
    carry them (the UI signs in with a token).
    """

    def __init__(self, files: TlsFiles) -> None:
        self._follower = _Follower(files, lambda: _https_context(files))
        self.context = self._current = self._follower.initial
        self.context.sni_callback = self._on_hello

    def _on_hello(self, connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext) -> None:
        fresh = self._follower.fetch()
        if fresh is not None:
            self._current = fresh
        if self._current is not self.context:
            connection.context = self._current


def _https_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(files.certificate, files.private_key, password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        raise OSError(f"the TLS files are not a usable certificate and key: {exc}") from None
    return context


def _stat(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        result = os.stat(path)
    except OSError:
        return (0, 0, -1)  # missing or unreadable: a version of its own, refused when read
    return (result.st_ino, result.st_mtime_ns, result.st_size)


def _check(files: TlsFiles, client_ca: bytes | None) -> None:
    """OSError unless the key matches the certificate and the client CA parses (ssl reads paths)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # No password: an encrypted key is refused, never prompted for.
        context.load_cert_chain(files.certificate, files.private_key, password=lambda: b"")
        if client_ca is not None:
            context.load_verify_locations(cadata=client_ca.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise OSError(f"the TLS files are not a usable certificate and key: {exc}") from None
