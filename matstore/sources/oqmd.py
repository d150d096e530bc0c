"""`oqmd`: the OQMD REST API (/oqmdapi/formationenergy, paged JSON) or its downloaded files.

The API answers {"links": {"next": URL|null, ...}, "data": [{name, entry_id, delta_e, band_gap,
stability, natoms, spacegroup, ...}], "meta": {"data_available": N, "more_data_available": bool,
...}}. We follow links.next page by page; each page is one chunk, and the cursor stored after
it is committed ({"next": URL, "rows": rows so far}) is where an interrupted ingest resumes.
HTTP 5xx/429, timeouts and dropped connections are retried with exponential backoff.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Iterator

import polars as pl

from . import UNITS, Chunk, Source, SourceError
from .csv import open_table

DEFAULT_URL = "https://oqmd.org/oqmdapi/formationenergy"
FIELDS = ("name", "entry_id", "delta_e", "band_gap", "stability", "natoms", "spacegroup")
PROPERTY_FIELDS = {"delta_e": "formation_energy_per_atom", "band_gap": "band_gap",
                   "stability": "energy_above_hull"}
FORMULA_COLUMNS = ("name", "formula", "composition", "composition_generic")
ID_COLUMNS = ("entry_id", "id", "oqmd_id")


class FetchError(SourceError):
    """The API kept failing after all retries (or refused the request)."""


def fetch_json(url: str, *, timeout: float, retries: int, backoff: float) -> dict:
    """GET url as JSON; retry transient failures with exponential backoff and jitter."""
    last = ""
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(url, headers={"Accept": "application/json",
                                                       "User-Agent": "matstore"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
            return json.loads(body)
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 429:
                raise FetchError(f"OQMD API {url}: HTTP {e.code} {e.reason}") from e
            last = f"HTTP {e.code} {e.reason}"
        except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError,
                http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        except json.JSONDecodeError as e:  # a truncated body
            last = f"invalid JSON ({e})"
        if attempt < retries:
            time.sleep(backoff * 2 ** attempt * (0.5 + random.random()))
    raise FetchError(f"OQMD API {url}: gave up after {retries + 1} attempts; last error: {last}")


def first_page_url(api_url: str, page_size: int, filter: str | None) -> str:
    query = {"fields": ",".join(FIELDS), "limit": page_size, "offset": 0}
    if filter:
        query["filter"] = filter
    sep = "&" if "?" in api_url else "?"
    return api_url + sep + urllib.parse.urlencode(query, safe=",")


def page_frame(data: list[dict]) -> pl.DataFrame:
    """One page's data list -> the common chunk shape (strings; ingest checks the numbers)."""
    def s(v):
        return None if v is None else str(v)
    return pl.DataFrame({
        "external_id": [s(r.get("entry_id")) or "" for r in data],
        "formula": [s(r.get("name")) for r in data],
        "raw": [json.dumps(r, default=str) for r in data],
        **{f"raw:{name}": [s(r.get(f)) for r in data] for f, name in PROPERTY_FIELDS.items()},
    }, schema={"external_id": pl.String, "formula": pl.String, "raw": pl.String,
               **{f"raw:{name}": pl.String for name in PROPERTY_FIELDS.values()}})


@dataclass
class OqmdApiSource(Source):
    first_url: str = DEFAULT_URL
    limit: int | None = None
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 1.0

    def chunks(self, cursor: str | None = None) -> Iterator[Chunk]:
        state = json.loads(cursor) if cursor else {"next": self.first_url, "rows": 0}
        url, rows = state["next"], state["rows"]
        while url and (self.limit is None or rows < self.limit):
            page = fetch_json(url, timeout=self.timeout, retries=self.retries, backoff=self.backoff)
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise FetchError(f"OQMD API {url}: answer has no 'data' list")
            available = (page.get("meta") or {}).get("data_available")
            if isinstance(available, int):
                self.total = available if self.limit is None else min(available, self.limit)
            data = page["data"]
            if self.limit is not None:
                data = data[: self.limit - rows]
            rows += len(data)
            url = (page.get("links") or {}).get("next")
            if not data:
                url = None  # an empty page ends the walk even if a next link is given
            done = not url or (self.limit is not None and rows >= self.limit)
            yield Chunk(page_frame(data), None if done else json.dumps({"next": url, "rows": rows}))
            if done:
                return


def open_oqmd(file=None, api_url=None, limit=None, page_size=None, filter=None, timeout=None,
              retries=None, backoff=None, formula_col=None, id_col=None, props=None) -> Source:
    if file:
        if api_url or filter:
            raise SourceError("oqmd: give either --file or --api-url/--filter, not both")
        return open_table("oqmd", file, formula_col=formula_col, id_col=id_col, props=props,
                          limit=limit, formula_candidates=FORMULA_COLUMNS, id_candidates=ID_COLUMNS)
    if props or formula_col or id_col:
        raise SourceError("oqmd: --prop/--formula-col/--id-col apply to --file only")
    api_url = api_url or DEFAULT_URL
    page_size = page_size or (min(limit, 1000) if limit else 1000)
    if page_size < 1 or (limit is not None and limit < 1):
        raise SourceError("oqmd: --limit and --page-size must be positive")
    params = {"page_size": page_size, "filter": filter, "limit": limit, "fields": list(FIELDS)}
    return OqmdApiSource(name="oqmd", uri=api_url, params=params, paged=True,
                         units={n: UNITS[n] for n in PROPERTY_FIELDS.values()}, total=limit,
                         first_url=first_page_url(api_url, page_size, filter), limit=limit,
                         timeout=30.0 if timeout is None else timeout,
                         retries=5 if retries is None else retries,
                         backoff=1.0 if backoff is None else backoff)
