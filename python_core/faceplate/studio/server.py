"""The Studio's web server: a Starlette app (served by uvicorn) over a :class:`Workspace`.

Security (the server reads and writes the user's files, so every request is checked):

* Bound to 127.0.0.1 unless told otherwise; requests whose ``Host`` is not the address the
  server was started on are refused (DNS rebinding).
* A random token (``secrets.token_urlsafe``) is required on every request: in the
  ``X-Faceplate-Token`` header, the ``token`` query parameter (the URL the CLI prints), or the
  ``SameSite=Strict`` HttpOnly cookie the page gets on first load (so ``<img>`` requests carry it).
* State-changing requests (POST) must carry the token in the header — which a cross-site form
  or image cannot send — and an ``Origin``, when present, equal to the server's own, and a JSON
  body. So another site open in the same browser can neither read nor change anything.
* The API names documents and faces by number; no request names a file path, so only what the
  command line opened is reachable. Static files come from the package's ``static`` folder by
  exact name.

Errors come back as ``{"error": "<file>: <problem>"}`` with 400 (bad input), 403 (token, host,
origin), 404, 409 (a conflict with another program, or the store is busy) or 500.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import socket
import threading
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from faceplate.core.errors import FaceplateError, InputError, StoreConflictError, StoreError
from faceplate.studio.workspace import Workspace

STATIC = Path(__file__).parent / "static"
TOKEN_HEADER = "X-Faceplate-Token"
COOKIE = "faceplate_token"
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
                 ".svg": "image/svg+xml"}
#: Most thumbnails in one batch request.
MAX_BATCH = 600
#: Largest JSON body accepted (a label set with many strokes is well under this).
MAX_BODY = 8 << 20


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Guard:
    """Token, host and origin checks in front of every route (a plain ASGI middleware)."""

    def __init__(self, app: Any, token: str, hosts: set[str], origins: set[str]) -> None:
        self.app = app
        self.token = token.encode()
        self.hosts = hosts
        self.origins = origins

    def _ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.token)

    def _check(self, scope: Any) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if host not in self.hosts:
            return 403, f"refused: unexpected Host {host!r}"
        header = headers.get(TOKEN_HEADER.lower())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        cookie = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookie.load(headers.get("cookie", ""))
        given = header or (query.get("token") or [None])[0] or (
            cookie[COOKIE].value if COOKIE in cookie else None)
        if not self._ok(given):
            return 403, ("refused: the access token is missing or wrong (open the URL "
                         "`faceplate studio` printed)")
        if scope["method"] not in ("GET", "HEAD"):
            if not self._ok(header):
                return 403, f"refused: a change needs the {TOKEN_HEADER} header"
            origin = headers.get("origin")
            if origin is not None and origin not in self.origins:
                return 403, f"refused: cross-site request from {origin}"
            if not headers.get("content-type", "").startswith("application/json"):
                return 400, "expected a JSON body"
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._check(scope)
        if refused is not None:
            await _error(*refused)(scope, receive, send)
            return
        set_cookie = scope["path"] == "/" and b"token=" in scope.get("query_string", b"")

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer")]
                if set_cookie:
                    extra.append((b"set-cookie", f"{COOKIE}={self.token.decode()}; HttpOnly; "
                                                 "Path=/; SameSite=Strict".encode()))
                message = dict(message, headers=list(message.get("headers", [])) + extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _status(err: FaceplateError) -> int:
    if isinstance(err, StoreConflictError):
        return 409
    if isinstance(err, StoreError) and "locked" in str(err):
        return 409
    if isinstance(err, InputError):
        return 400
    return 400 if not isinstance(err, StoreError) else 500


def _json_route(fn: Callable[..., Any]) -> Callable[[Request], Any]:
    """A sync handler (run in Starlette's thread pool) returning JSON; errors mapped."""
    async def endpoint(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body: Any = None
        if request.method == "POST":
            raw = await request.body()
            if len(raw) > MAX_BODY:
                return _error(413, "request too large")
            try:
                body = json.loads(raw or b"{}")
            except ValueError as err:
                return _error(400, f"the body is not JSON ({err})")
            if not isinstance(body, dict):
                return _error(400, "the body must be a JSON object")
        try:
            params = {k: int(v) for k, v in request.path_params.items()}
        except ValueError:
            return _error(404, "not found")
        try:
            out = await run_in_threadpool(fn, request, body or {}, **params)
        except FaceplateError as err:
            return _error(_status(err), str(err))
        if isinstance(out, Response):
            return out
        return JSONResponse(out)
    return endpoint


def create_app(ws: Workspace, token: str, hosts: set[str], origins: set[str]) -> Starlette:
    """The ASGI app for ``ws`` (see the module docstring for the checks)."""

    def jpeg(data: bytes) -> Response:
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        allowed = {p.name: p for p in STATIC.iterdir() if p.suffix in _STATIC_TYPES}
        path = allowed.get(name)
        if path is None:
            return _error(404, "not found")
        return FileResponse(path, media_type=_STATIC_TYPES[path.suffix],
                            headers={"Cache-Control": "no-cache"})

    def docs(_r: Request, _b: Any) -> Any:
        return ws.documents()

    def faceset(_r: Request, _b: Any, fid: int) -> Any:
        from faceplate.faceset.sort_keys import SORT_KEYS

        fs = ws.faceset(fid)
        name = next(d["name"] for d in ws.documents()["facesets"] if d["id"] == fid)
        return Response(fs.summary_json(ws.store_ids(), {"name": name,
                                                         "sort_keys": SORT_KEYS.names()}),
                        media_type="application/json")

    async def thumb(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            fid, face = int(request.path_params["fid"]), int(request.path_params["face"])
            fs = ws.faceset(fid)
            data = fs.cached_thumbnail(face)  # no thread hop for a cached one
            if data is None:
                data = await run_in_threadpool(fs.thumbnail, face)
        except ValueError:
            return _error(404, "not found")
        except FaceplateError as err:
            return _error(_status(err), str(err))
        return jpeg(data)

    def thumbs(r: Request, _b: Any, fid: int) -> Any:
        """Many thumbnails in one response: the JPEGs back to back, their byte lengths in
        ``X-Thumb-Sizes`` (one round trip for a screenful instead of one per face); a face
        whose thumbnail cannot be made has length 0."""
        fs = ws.faceset(fid)
        try:
            ids = [int(v) for v in r.query_params.get("ids", "").split(",") if v]
        except ValueError:
            raise InputError("ids: expected face numbers separated by commas") from None
        if not 1 <= len(ids) <= MAX_BATCH:
            raise InputError(f"ids: 1..{MAX_BATCH} faces per request")
        # a face whose thumbnail cannot be made gets length 0 (/thumb/<id> says why)
        parts = [t or b"" for t in fs.thumbnails(ids)]
        return Response(b"".join(parts), media_type="application/octet-stream",
                        headers={"X-Thumb-Sizes": ",".join(str(len(p)) for p in parts),
                                 "Cache-Control": "no-store"})

    def fs_sort(_r: Request, b: Any, fid: int) -> Any:
        return ws.faceset(fid).sort(str(b.get("key", "")), bool(b.get("group")),
                                    b.get("bins") if isinstance(b.get("bins"), int) else None)

    def fs_dups(_r: Request, _b: Any, fid: int) -> Any:
        return {"groups": ws.faceset(fid).duplicates()}

    def _ids(b: Any) -> list[int]:
        ids = b.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise InputError("ids: expected a list of face numbers")
        return ids

    def fs_trash(_r: Request, b: Any, fid: int) -> Any:
        fs = ws.faceset(fid)
        return {"moved": fs.trash_faces(_ids(b)), "undo": fs.history_counts()}

    def fs_restore(_r: Request, b: Any, fid: int) -> Any:
        fs = ws.faceset(fid)
        return {"moved": fs.trash_faces(_ids(b), restore=True), "undo": fs.history_counts()}

    def fs_tag(_r: Request, b: Any, fid: int) -> Any:
        fs = ws.faceset(fid)
        n = fs.tag_faces(_ids(b), str(b.get("tag", "")), bool(b.get("on", True)))
        return {"changed": n, "undo": fs.history_counts()}

    def fs_undo(_r: Request, _b: Any, fid: int) -> Any:
        fs = ws.faceset(fid)
        return {"label": fs.step(True), "undo": fs.history_counts()}

    def fs_redo(_r: Request, _b: Any, fid: int) -> Any:
        fs = ws.faceset(fid)
        return {"label": fs.step(False), "undo": fs.history_counts()}

    def store_info(_r: Request, _b: Any, sid: int) -> Any:
        return ws.store(sid).info()

    def frame_faces(_r: Request, _b: Any, sid: int, fi: int) -> Any:
        return ws.store(sid).frame_faces(fi)

    def frame_image(_r: Request, _b: Any, sid: int, fi: int) -> Any:
        return jpeg(ws.store(sid).frame_jpeg(fi))

    def face_crop(r: Request, _b: Any, sid: int, fi: int, xi: int) -> Any:
        try:
            size = int(r.query_params.get("size", "256"))
        except ValueError:
            size = 256
        return jpeg(ws.store(sid).face_crop_jpeg(fi, xi, max(64, min(size, 1024))))

    def set_landmarks(_r: Request, b: Any, sid: int, fi: int, xi: int) -> Any:
        return ws.store(sid).set_landmarks(fi, xi, b.get("landmarks"), b.get("etag"))

    def add_face(_r: Request, b: Any, sid: int, fi: int) -> Any:
        return ws.store(sid).add_face(fi, b.get("bbox"))

    def realign(_r: Request, b: Any, sid: int, fi: int, xi: int) -> Any:
        return ws.store(sid).realign(fi, xi, b.get("etag"))

    def delete_face(_r: Request, b: Any, sid: int, fi: int, xi: int) -> Any:
        return ws.store(sid).delete_face(fi, xi, b.get("etag"))

    def keep_only(_r: Request, _b: Any, sid: int, fi: int, xi: int) -> Any:
        return ws.store(sid).keep_only(fi, xi)

    def copy_face(_r: Request, b: Any, sid: int, fi: int) -> Any:
        src, face = b.get("from_frame"), b.get("face")
        if not isinstance(src, int) or not isinstance(face, int):
            raise InputError("from_frame and face: expected integers")
        return ws.store(sid).copy_face(fi, src, face)

    def set_labels(_r: Request, b: Any, sid: int, fi: int, xi: int) -> Any:
        return ws.store(sid).set_labels(fi, xi, b.get("labels"), b.get("etag"))

    def st_undo(_r: Request, _b: Any, sid: int) -> Any:
        return ws.store(sid).step(True)

    def st_redo(_r: Request, _b: Any, sid: int) -> Any:
        return ws.store(sid).step(False)

    def labels_folder(sid: int) -> Path:
        st = ws.store(sid)
        return st.path.with_name(st.path.stem + "_mask_labels")

    def labels_export(_r: Request, _b: Any, sid: int) -> Any:
        folder = labels_folder(sid)
        return {"written": ws.store(sid).export_labels(folder), "folder": str(folder)}

    def labels_import(_r: Request, _b: Any, sid: int) -> Any:
        folder = labels_folder(sid)
        return {"imported": ws.store(sid).import_labels(folder), "folder": str(folder)}

    j = _json_route
    fa = "/api/store/{sid}/frame/{fi}/face/{xi}"
    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/docs", j(docs)),
        Route("/api/faceset/{fid}", j(faceset)),
        Route("/api/faceset/{fid}/thumb/{face}", thumb),
        Route("/api/faceset/{fid}/thumbs", j(thumbs)),
        Route("/api/faceset/{fid}/sort", j(fs_sort), methods=["POST"]),
        Route("/api/faceset/{fid}/duplicates", j(fs_dups)),
        Route("/api/faceset/{fid}/trash", j(fs_trash), methods=["POST"]),
        Route("/api/faceset/{fid}/restore", j(fs_restore), methods=["POST"]),
        Route("/api/faceset/{fid}/tag", j(fs_tag), methods=["POST"]),
        Route("/api/faceset/{fid}/undo", j(fs_undo), methods=["POST"]),
        Route("/api/faceset/{fid}/redo", j(fs_redo), methods=["POST"]),
        Route("/api/store/{sid}", j(store_info)),
        Route("/api/store/{sid}/undo", j(st_undo), methods=["POST"]),
        Route("/api/store/{sid}/redo", j(st_redo), methods=["POST"]),
        Route("/api/store/{sid}/labels/export", j(labels_export), methods=["POST"]),
        Route("/api/store/{sid}/labels/import", j(labels_import), methods=["POST"]),
        Route("/api/store/{sid}/frame/{fi}", j(frame_faces)),
        Route("/api/store/{sid}/frame/{fi}/image", j(frame_image)),
        Route("/api/store/{sid}/frame/{fi}/faces", j(add_face), methods=["POST"]),
        Route("/api/store/{sid}/frame/{fi}/copy", j(copy_face), methods=["POST"]),
        Route(fa + "/crop", j(face_crop)),
        Route(fa + "/landmarks", j(set_landmarks), methods=["POST"]),
        Route(fa + "/realign", j(realign), methods=["POST"]),
        Route(fa + "/delete", j(delete_face), methods=["POST"]),
        Route(fa + "/keep", j(keep_only), methods=["POST"]),
        Route(fa + "/labels", j(set_labels), methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[
        Middleware(_Guard, token=token, hosts=hosts, origins=origins)])


class StudioServer:
    """uvicorn serving :func:`create_app` on a socket bound before start (port 0: any free).

    Args:
        ws: The open documents (closed by :meth:`stop`... by the caller, not here).
        host: Address to bind (127.0.0.1 by default).
        port: Port (0 = a free one).
        token: Access token (random when None).
    """

    def __init__(self, ws: Workspace, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None) -> None:
        import uvicorn

        self.token = token or secrets.token_urlsafe(24)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as err:
            self.sock.close()
            raise InputError(f"cannot listen on {host}:{port} ({err.strerror or err})") from None
        self.sock.listen(128)  # connections queue from now on, before uvicorn serves them
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        names = {shown} | ({"localhost", "127.0.0.1"} if host in ("127.0.0.1", "::1") else set())
        hosts = {f"{n}:{self.port}" for n in names}
        origins = {f"http://{h}" for h in hosts}
        self.app = create_app(ws, self.token, hosts, origins)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                    access_log=False, lifespan="off"))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def run(self) -> None:
        """Serve until Ctrl-C (uvicorn's own signal handling stops it cleanly)."""
        self.server.run(sockets=[self.sock])

    def start(self) -> None:
        """Serve from a background thread (tests, benchmarks)."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="faceplate-studio", daemon=True)
        self._thread.start()
        import time

        for _ in range(500):
            if self.server.started:
                return
            time.sleep(0.01)
        raise RuntimeError("the Studio server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
