"""The registry's web pages: repositories (searchable), tags, a manifest (platforms, layers, config, history,
the pull command), and a blob. Plain server-rendered HTML, every value escaped, a little CSS, no scripts
except the copy button's one line.

Pages take names as query parameters (`/ui/repository?name=a/b`), parsed with the same grammar as the API,
and are authorized as a pull of that repository (the catalog for the list).
May import: berth.content, berth.oci, berth.util, berth.errors, aiohttp.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from html import escape
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from berth.errors import BerthError, InvalidArgument, NotFound
from berth.oci.digest import Digest
from berth.registry.app import Registry
from berth.registry.auth import CATALOG, Access
from berth.registry.errors import RegistryError
from berth.registry.manifests import INDEX_TYPES
from berth.registry.names import RepoName, Tag
from berth.registry.storage import RegistryStorage

MAX_CONFIG_BYTES = 20 << 20

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1f3b5b;color:#fff;padding:.8em 1.5em}header a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:1100px;margin:1.2em auto;padding:0 1.5em}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5em 0 1.5em}
th,td{text-align:left;padding:.45em .7em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef1f5;font-weight:600}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
a{color:#1a5fb4}.crumbs{margin-bottom:1em}.num{text-align:right;white-space:nowrap}
.pull{display:flex;gap:.5em;align-items:center;background:#fff;border:1px solid #d5d9df;padding:.5em .8em}
.pull code{flex:1}button{cursor:pointer}input[type=search]{padding:.4em;width:20em}
h2{margin-top:1.4em;font-size:1.15em}.empty{color:#667}td{overflow-wrap:anywhere}
"""


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _link(path: str, text: str, **params: str) -> str:
    return f'<a href="{escape(path + "?" + urlencode(params))}">{escape(text)}</a>'


def _page(title: str, crumbs: list[str], body: str) -> web.Response:
    nav = " / ".join([_link("/", "repositories").replace("?", "", 1)] + crumbs)
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · berth registry</title>"
            f"<meta name=viewport content='width=device-width'><style>{_CSS}</style></head><body>"
            f"<header><a href='/'>berth registry</a></header><main><div class=crumbs>{nav}</div>"
            f"<h1>{escape(title)}</h1>{body}</main></body></html>")
    return web.Response(text=html, content_type="text/html")


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    if not rows:
        return "<p class=empty>none</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Pages:
    def __init__(self, storage: RegistryStorage, authorize: Callable[[web.Request, Access], str]) -> None:
        self._storage = storage
        self._authorize = authorize

    def _name(self, request: web.Request) -> RepoName:
        name = RepoName.parse(request.query.get("name", ""))
        self._authorize(request, Access("repository", name.value, ("pull",)))
        return name

    async def repositories(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request, CATALOG)
        query = request.query.get("q", "").strip()
        names = [n for n in self._storage.repositories() if query.lower() in n.lower()]
        rows = []
        for n in names:
            try:
                count = len(self._storage.tags(RepoName(n)))
            except NotFound:
                count = 0
            rows.append([_link("/ui/repository", n, name=n), f"<span class=num>{count}</span>"])
        form = (f"<form method=get action='/'><input type=search name=q placeholder='search repositories' "
                f"value='{escape(query)}' aria-label=search> <button type=submit>Search</button></form>")
        return _page("Repositories", [], form + _table(["Repository", "Tags"], rows, "repos"))

    async def repository(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request)
        rows = []
        for t in self._storage.tags(name):
            try:
                m = self._storage.get_manifest(name, Tag(t))
            except (NotFound, InvalidArgument):
                continue
            rows.append([_link("/ui/manifest", t, name=name.value, ref=t), f"<code>{escape(m.digest.short)}</code>",
                         escape(m.media_type.rsplit(".", 2)[-2] if "." in m.media_type else m.media_type),
                         f"<span class=num>{_size(len(m.data))}</span>"])
        return _page(name.value, [escape(name.value)], _table(["Tag", "Digest", "Type", "Manifest"], rows, "tags"))

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request)
        ref_text = request.query.get("ref", "")
        ref: Tag | Digest = Digest.parse(ref_text) if ":" in ref_text else Tag.parse(ref_text)
        stored = self._storage.get_manifest(name, ref)
        raw = json.loads(stored.data)
        host = request.host
        pull = f"docker pull {host}/{name}" + (f"@{stored.digest}" if isinstance(ref, Digest) else f":{ref}")
        parts = [f"<div class=pull><code id=pull>{escape(pull)}</code><button type=button "
                 f"onclick=\"navigator.clipboard.writeText(document.getElementById('pull').textContent)\">"
                 f"Copy</button></div>",
                 f"<p>Digest <code>{escape(str(stored.digest))}</code><br>Media type "
                 f"<code>{escape(stored.media_type)}</code></p>"]
        if stored.media_type in INDEX_TYPES:
            rows = []
            for d in raw.get("manifests") or []:
                p = d.get("platform") or {}
                plat = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x) or "unknown"
                rows.append([_link("/ui/manifest", plat, name=name.value, ref=str(d.get("digest"))),
                             f"<code>{escape(str(d.get('digest')))}</code>",
                             f"<span class=num>{_size(int(d.get('size') or 0))}</span>"])
            parts.append("<h2>Platforms</h2>" + _table(["Platform", "Manifest", "Size"], rows, "platforms"))
        else:
            parts.append(self._image(name, raw))
        return _page(f"{name}:{ref}" if isinstance(ref, Tag) else f"{name}@{ref.short}",
                     [_link("/ui/repository", name.value, name=name.value), escape(str(ref))], "".join(parts))

    def _image(self, name: RepoName, raw: Mapping[str, Any]) -> str:
        layers = raw.get("layers") or []
        total = sum(int(d.get("size") or 0) for d in layers)
        rows = [[str(i + 1), _link("/ui/blob", str(d.get("digest")), name=name.value, digest=str(d.get("digest")),
                                   mt=str(d.get("mediaType"))),
                 escape(str(d.get("mediaType"))), f"<span class=num>{_size(int(d.get('size') or 0))}</span>"]
                for i, d in enumerate(layers)]
        out = [f"<h2>Layers ({len(layers)}, {_size(total)})</h2>",
               _table(["#", "Digest", "Media type", "Size"], rows, "layers")]
        config: Mapping[str, Any] = {}
        cdesc = raw.get("config") or {}
        try:
            config = json.loads(self._storage.read_blob(name, Digest.parse(str(cdesc.get("digest"))),
                                                        MAX_CONFIG_BYTES))
        except (BerthError, ValueError):
            out.append("<p class=empty>config blob unavailable</p>")
        if isinstance(config, Mapping) and config:
            c = config.get("config") or {}
            kv = [["Platform", escape("/".join(str(x) for x in (config.get("os"), config.get("architecture"),
                                                                  config.get("variant")) if x))],
                  ["Created", escape(str(config.get("created") or ""))],
                  ["Entrypoint", f"<code>{escape(json.dumps(c.get('Entrypoint')))}</code>"],
                  ["Cmd", f"<code>{escape(json.dumps(c.get('Cmd')))}</code>"],
                  ["Working dir", f"<code>{escape(str(c.get('WorkingDir') or ''))}</code>"],
                  ["User", f"<code>{escape(str(c.get('User') or ''))}</code>"],
                  ["Env", "<br>".join(f"<code>{escape(str(e))}</code>" for e in c.get("Env") or [])],
                  ["Labels", "<br>".join(f"<code>{escape(str(k))}={escape(str(v))}</code>"
                                         for k, v in sorted((c.get("Labels") or {}).items()))]]
            out.append("<h2>Config</h2>" + _table(["Field", "Value"], kv, "config"))
            hist = [[escape(str(h.get("created") or "")), f"<code>{escape(str(h.get('created_by') or ''))}</code>",
                     "empty" if h.get("empty_layer") else "layer"] for h in config.get("history") or []]
            out.append("<h2>History</h2>" + _table(["Created", "Command", ""], hist, "history"))
        return "".join(out)

    async def blob(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request)
        digest = Digest.parse(request.query.get("digest", ""))
        size = self._storage.blob_size(name, digest)
        media_type = request.query.get("mt", "")
        kv = [["Digest", f"<code>{escape(str(digest))}</code>"], ["Size", f"{_size(size)} ({size} bytes)"],
              ["Media type", f"<code>{escape(media_type)}</code>"],
              ["Download", f"<a href='/v2/{escape(name.value)}/blobs/{escape(str(digest))}'>blob</a>"]]
        return _page(f"Layer {digest.short}", [_link("/ui/repository", name.value, name=name.value),
                                               escape(digest.short)], _table(["Field", "Value"], kv, "blob"))


def _guard(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except RegistryError:
            raise
        except InvalidArgument as exc:
            return web.Response(text=str(exc), status=400, content_type="text/plain")
        except NotFound as exc:
            return web.Response(text=str(exc), status=404, content_type="text/plain")
    return wrapped


def add_routes(app: web.Application, registry: Registry) -> None:
    pages = Pages(registry.storage, registry.authorize_page)
    app.router.add_get("/", _guard(pages.repositories))
    app.router.add_get("/ui/repository", _guard(pages.repository))
    app.router.add_get("/ui/manifest", _guard(pages.manifest))
    app.router.add_get("/ui/blob", _guard(pages.blob))
