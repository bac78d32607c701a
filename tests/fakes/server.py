"""Serves a fake vendor's ASGI app on 127.0.0.1 in a background thread, optionally over TLS.

The vendor clients under test are synchronous (pagerduty) or run their own event loop calls
(slack_sdk), so the fake lives in its own thread with its own loop and never competes with the
test's loop. TLS uses a throwaway CA from trustme: the pagerduty client refuses plain http.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
import uvicorn

STARTUP_SECONDS = 10.0
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Served:
    """Where a fake listens, and the CA bundle a client must trust when it listens on https."""

    url: str
    ca_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the fake's throwaway CA (or the system's, without TLS)."""
        if self.ca_file is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(self.ca_file))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, *, tls_dir: Path | None = None) -> Iterator[Served]:
    """Runs `app` until the block ends. With `tls_dir`, serves https with a certificate for
    127.0.0.1 and localhost, signed by a CA whose PEM is written into that folder."""
    port = _free_port()
    options: dict[str, Any] = {}
    ca_file: Path | None = None
    if tls_dir is not None:
        authority = trustme.CA()
        leaf = authority.issue_cert("127.0.0.1", "localhost")
        ca_file = tls_dir / "fake-ca.pem"
        key_file = tls_dir / "fake-server.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        leaf.private_key_and_cert_chain_pem.write_to_path(str(key_file))
        options = {"ssl_keyfile": str(key_file), "ssl_certfile": str(key_file)}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"fake-{port}", daemon=True)
    thread.start()
    for _ in range(int(STARTUP_SECONDS / POLL_SECONDS)):
        if server.started or not thread.is_alive():
            break
        time.sleep(POLL_SECONDS)
    if not server.started:
        raise RuntimeError(f"the fake server on port {port} did not start")
    scheme = "https" if tls_dir is not None else "http"
    try:
        yield Served(f"{scheme}://127.0.0.1:{port}", ca_file)
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)
