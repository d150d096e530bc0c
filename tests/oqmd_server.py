"""A loopback stand-in for the OQMD REST API (/oqmdapi/formationenergy), for tests.

It serves rows in the real answer's shape ({"links": {"next": ...}, "data": [...], "meta": {...},
"response_message": "OK"}), paged by ?limit=&offset=, and injects faults on request: an HTTP
500 or a stalled answer (longer than the client's timeout) the first time a given offset is
asked for, or an outage (HTTP 503 for every request at or past an offset) until cleared.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/oqmdapi/formationenergy"


class FakeOqmd:
    def __init__(self, rows: list[dict], stall_seconds: float = 3.0):
        self.rows = rows
        self.stall_seconds = stall_seconds
        self.faults: dict[int, list[str]] = {}  # offset -> faults still to inject ("500", "stall")
        self.down_from: int | None = None       # offsets >= this answer 503 while set
        self.requests: list[tuple[int, str]] = []  # (offset, what was answered)
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    def __enter__(self) -> "FakeOqmd":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()  # wake stalled handlers so shutdown is quick
        self._server.shutdown()
        self._server.server_close()

    def page(self, query: dict[str, list[str]]) -> dict:
        """The answer to one query string, exactly as the server sends it."""
        limit = int(query.get("limit", ["50"])[0])
        offset = int(query.get("offset", ["0"])[0])
        fields = query.get("fields", [""])[0].split(",") if query.get("fields") else None
        chunk = self.rows[offset: offset + limit]
        data = [{k: r.get(k) for k in fields} if fields else dict(r) for r in chunk]
        more = offset + limit < len(self.rows)
        nxt = dict(query, offset=[str(offset + limit)])
        return {
            "links": {"base_url": self.url.rsplit(PATH, 1)[0],
                      "next": f"{self.url}?{urllib.parse.urlencode(nxt, doseq=True)}" if more else None,
                      "prev": None},
            "resource": {},
            "data": data,
            "meta": {"query": {"representation": f"/formationenergy?{urllib.parse.urlencode(query, doseq=True)}"},
                     "api_version": "1.0", "time_stamp": datetime.now(timezone.utc).isoformat(),
                     "data_returned": len(data), "data_available": len(self.rows), "comments": "",
                     "query_tree": "", "more_data_available": more},
            "response_message": "OK",
        }

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                if url.path != PATH:
                    return self._send(404, {"detail": "not found"})
                query = urllib.parse.parse_qs(url.query)
                offset = int(query.get("offset", ["0"])[0])
                if fake.down_from is not None and offset >= fake.down_from:
                    fake.requests.append((offset, "503"))
                    return self._send(503, {"detail": "service unavailable"})
                pending = fake.faults.get(offset)
                if pending:
                    fault = pending.pop(0)
                    fake.requests.append((offset, fault))
                    if fault == "500":
                        return self._send(500, {"detail": "server error"})
                    if fault == "stall":
                        fake._release.wait(fake.stall_seconds)
                else:
                    fake.requests.append((offset, "ok"))
                try:
                    self._send(200, fake.page(query))
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (stall)
                    pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def rows_from_csv(frame, bad_every: int = 0) -> list[dict]:
    """API rows built from a shared-data frame with formula,target (formation energy, eV/atom)."""
    from matstore.compositions import FormulaError, parse_amounts

    rows = []
    for i, (formula, target) in enumerate(zip(frame["formula"], frame["target"])):
        try:
            natoms = int(sum(parse_amounts(formula).values()))
        except FormulaError:
            natoms = None
        name = formula if not (bad_every and i % bad_every == bad_every - 1) else f"Qq{i}"
        rows.append({"name": name, "entry_id": 1000 + i, "delta_e": target, "band_gap": None,
                     "stability": None, "natoms": natoms, "spacegroup": "P1",
                     "composition_generic": None, "icsd_id": None})
    return rows
