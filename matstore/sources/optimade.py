"""`optimade`: the structures of an OPTIMADE database (Materials Project, OQMD, Alexandria, COD, ...),
read page by page through the `optimade` package's client (OptimadeClient, one page per request).
Where the client's extra dependencies are missing (optimade[http-client]: httpx2), the same pages
are read with requests, following the same links (fetch_page).

Each page is one transaction; the cursor stored with it is the server's next-page link, so a killed
ingest resumes at the page after the last one committed. A server error, a bad filter or a
timeout (after the client's retries) is a SourceError naming the URL and the server's message; the
pages committed before it stay.
"""

from __future__ import annotations

import json
from urllib.parse import urlparse

from . import SourceError, check_kind, check_source_name
from .structures import limits_of

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _check_url(url) -> str:
    if not url:
        raise SourceError("source optimade needs --url (the database's base URL, e.g. https://optimade.materialsproject.org)")
    u = urlparse(str(url))
    if u.scheme not in ("http", "https") or not u.netloc:
        raise SourceError(f"--url {url!r}: expected an http(s) base URL, e.g. https://optimade.materialsproject.org")
    return str(url).rstrip("/")


def entry_of(doc: dict):
    """One OPTIMADE structure resource -> matstore Entry (structure or reason)."""
    from optimade.adapters import Structure as OptimadeStructure  # noqa: PLC0415

    from ..structures.readers import Entry, _quiet, _short  # noqa: PLC0415

    ext = str(doc.get("id", ""))
    raw = _short(json.dumps(doc.get("attributes", {}), default=str))
    attrs = doc.get("attributes") or {}
    if not ext:
        return Entry(ext, raw, None, "OPTIMADE entry without an id")
    dims = attrs.get("dimension_types")
    if dims is not None and list(dims) != [1, 1, 1]:
        return Entry(ext, raw, None, f"not periodic in 3-D (dimension_types {dims})")
    adapted, reason = _quiet(lambda: OptimadeStructure(doc).as_pymatgen)
    if adapted is None or not hasattr(adapted, "lattice"):
        return Entry(ext, raw, None, f"cannot convert to a pymatgen Structure: {reason or type(adapted).__name__}")
    return Entry(ext, raw, adapted, None)


def open_optimade(api_url=None, filter=None, page_size=None, timeout=None, retries=None, limit=None,
                  source_name=None, kind=None, method=None, allow_partial=None, max_sites=None,
                  min_distance=None):
    """The structures endpoint of the OPTIMADE database at api_url, filtered by an OPTIMADE filter."""
    from ..structures.ingest import StructureSource  # noqa: PLC0415

    url = _check_url(api_url)
    name = "optimade" if source_name is None else check_source_name(source_name)
    kind, method = check_kind(kind, method)
    limits = limits_of(allow_partial, max_sites, min_distance)
    size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise SourceError(f"--page-size must be 1..{MAX_PAGE_SIZE}, got {page_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SourceError(f"optimade: --limit must be a positive number of entries, got {limit!r}")
    timeout = 30.0 if timeout is None else float(timeout)
    retries = 2 if retries is None else int(retries)
    if not (timeout > 0 and 0 <= retries <= 10):
        raise SourceError("--timeout must be > 0 s and --retries 0..10")
    params = {"filter": filter or "", "page_size": size, "limit": limit,
              "limits": {"max_sites": limits.max_sites, "min_distance": limits.min_distance,
                         "allow_partial": limits.allow_partial}}
    if kind is not None:
        params = {**params, "kind": kind, "method": method}
    source = StructureSource(name=name, uri=url, params=params, paged=True, kind=kind, method=method,
                             limits=limits, method_name="optimade")

    def chunks(cursor):
        fetch = page_fetcher(url, filter or "", size, timeout, retries)
        seen = 0
        nxt = cursor
        while True:
            page = fetch(nxt)
            if source.total is None:
                source.total = page.get("meta", {}).get("data_returned")
            data = page.get("data") or []
            if limit is not None:
                data = data[: max(limit - seen, 0)]
            seen += len(data)
            link = (page.get("links") or {}).get("next")
            nxt = link.get("href") if isinstance(link, dict) else link
            done = not nxt or not data or (limit is not None and seen >= limit)
            yield [entry_of(d) for d in data], (None if done else nxt)
            if done:
                return

    source.entry_chunks = chunks
    return source


def page_fetcher(url: str, filter: str, size: int, timeout: float, retries: int):
    """fetch(next_url or None) -> one page (data, meta, links); SourceError on any failure."""
    try:
        import requests  # noqa: PLC0415
        from optimade.client import OptimadeClient  # noqa: PLC0415
    except ImportError:
        return lambda nxt: fetch_page(nxt or first_url(url, filter, size), timeout, retries)
    pages: list[dict] = []
    client = OptimadeClient(base_urls=[url], use_async=False, http_client=requests.Session, silent=True,
                            http_timeout=timeout, max_attempts=retries, max_results_per_provider=0,
                            callbacks=[lambda _url, page: pages.append(page)])

    def fetch(nxt):
        pages.clear()
        got = client.get_one("structures", filter, url, page_limit=size, paginate=False, override_url=nxt)[url]
        if got.errors or not pages:
            why = got.errors[0] if got.errors else "no response"
            raise SourceError(f"OPTIMADE {nxt or url}: {str(why).splitlines()[0][:300]}")
        return pages[-1]
    return fetch


def first_url(url: str, filter: str, size: int) -> str:
    from urllib.parse import urlencode  # noqa: PLC0415

    query = {"page_limit": size, **({"filter": filter} if filter else {})}
    return f"{url}/v1/structures?{urlencode(query)}"


def fetch_page(page_url: str, timeout: float, retries: int) -> dict:
    """One page with requests: retried on connection errors/timeouts/5xx, then a SourceError."""
    import time  # noqa: PLC0415

    import requests  # noqa: PLC0415

    why = ""
    for attempt in range(retries + 1):
        try:
            r = requests.get(page_url, timeout=timeout)
        except requests.RequestException as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        else:
            if r.status_code == 200:
                try:
                    doc = r.json()
                except ValueError:
                    raise SourceError(f"OPTIMADE {page_url}: the response is not JSON") from None
                if not isinstance(doc, dict):
                    raise SourceError(f"OPTIMADE {page_url}: the response is not an OPTIMADE page")
                return doc
            try:
                errors = r.json().get("errors") or []
                why = "; ".join(f"{e.get('title', '')}: {e.get('detail', '')}" for e in errors)
            except ValueError:
                why = r.text[:200]
            why = f"HTTP {r.status_code}{': ' + why if why else ''}"
            if r.status_code < 500 and r.status_code != 429:
                break                      # a bad filter or URL: retrying will not help
        if attempt < retries:
            time.sleep(min(2 ** attempt, 5))
    raise SourceError(f"OPTIMADE {page_url}: {why.splitlines()[0][:300] if why else 'no response'}")
