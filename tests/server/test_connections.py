"""HTTP connections as Go's net/http keeps them."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit


def test_a_connection_serves_any_number_of_requests(server):
    """No request-count limit per connection (hypercorn's default closed it
    after 1000 requests; Cloudreve's Go server never does)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", "/api/v4/site/ping")
        conn.getresponse().read()
        sock = conn.sock
        for _ in range(1100):
            conn.request("GET", "/api/v4/site/ping")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200 and resp.getheader("connection") is None and not resp.will_close
            assert conn.sock is sock
    finally:
        conn.close()
