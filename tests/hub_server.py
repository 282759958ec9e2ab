"""A local stand-in for the Hugging Face Hub: real HTTP on 127.0.0.1, for real huggingface_hub.

It speaks the part of the Hub protocol the app uses, as huggingface_hub 2.x expects it:

* ``HEAD``/``GET /{repo}/resolve/{revision}/{file}``: ``X-Repo-Commit``, ``ETag``, and for LFS
  files a 302 to a CDN with ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``, like the Hub.
  The CDN is a second server on another port, hence another origin: the client must not send
  the token there, as with the real CDN.
* ``GET /cdn/{sha256}/{file}``: the bytes, with ``Accept-Ranges`` and Range requests (206).
* ``GET /api/models``, ``GET /api/models/{repo}[/revision/{revision}]`` (``blobs=True`` adds
  sizes and LFS hashes to ``siblings``), ``POST /api/models/{repo}/paths-info/{revision}`` and
  ``GET /api/models/{repo}/tree/{revision}[/{path}]``.
* Absolute request targets, so the server can also act as the HTTP proxy in front of a Hub.

Tests register files (bytes or a path) and inject faults per file: an HTTP status, a dropped
connection or a stall at a byte offset, a corrupted byte. Every request is recorded.
Errors carry the ``X-Error-Code`` headers huggingface_hub turns into its exception types.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

COMMIT_DATE = "2026-01-15T12:00:00.000Z"
_SEND_CHUNK_BYTES = 64 * 1024
_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)")
_CDN = re.compile(r"/cdn/(?P<sha256>[0-9a-f]{64})/(?P<file>.+)")
_MODEL_API = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<revision>[^/]+))?")
_PATHS_INFO = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<revision>[^/]+)")
_TREE = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class HostedFile:
    repo_id: str
    filename: str
    size: int
    sha256: str
    blob_id: str  # git's id of the file, or of its LFS pointer
    pointer_size: int | None  # LFS files only
    commit: str

    @property
    def lfs(self) -> bool:
        return self.pointer_size is not None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query, without scheme and host
    headers: dict[str, str]  # names in lower case
    origin: str  # "hub" or "cdn"
    proxied: bool  # the request came with an absolute target, as to a proxy

    @property
    def file(self) -> str:
        """The file a resolve or CDN request is for, else ''."""
        route = urlsplit(self.path).path
        match = _RESOLVE.fullmatch(route) or _CDN.fullmatch(route)
        return unquote(match["file"]) if match else ""


@dataclass
class Stall:
    """Stops sending a file at ``offset`` until ``release()``."""

    offset: int
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class _Fault:
    kind: str  # "status", "drop", "stall" or "corrupt"
    times: int | None  # None: every time
    status: int = 0
    offset: int = 0
    stall: Stall | None = None


@dataclass
class _Repo:
    commit: str
    token: str | None = None
    files: dict[str, tuple[HostedFile, bytes | Path]] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stalled or idle keep-alive connection never blocks the test's end
    block_on_close = False

    def __init__(self, hub: HubServer, origin: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.origin = origin

    def handle_error(self, request, client_address) -> None:
        # A client that cancels or pauses a download closes its connection mid-request: expected.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's client expects
    server: _Server

    def do_HEAD(self) -> None:
        self.server.hub._handle(self)

    def do_GET(self) -> None:
        self.server.hub._handle(self)

    def do_POST(self) -> None:
        self.server.hub._handle(self)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the recorded requests say it all


class HubServer:
    """Start with ``with HubServer() as hub:``; ``hub.endpoint`` is the Hub's URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._faults: dict[tuple[str, str], list[_Fault]] = {}
        self._requests: list[RecordedRequest] = []
        self._stalls: list[Stall] = []
        self._hub = _Server(self, "hub")
        self._cdn = _Server(self, "cdn")
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for server in (self._hub, self._cdn)
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            for stall in self._stalls:
                stall.release()
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    # ------------------------------------------------------------------------- content

    def add_file(self, repo_id: str, filename: str, content: bytes | Path, *, lfs: bool = True) -> HostedFile:
        """Serves ``content`` as ``filename`` at the repository's one commit (also called "main")."""
        sha256 = hashlib.sha256()
        git_blob = hashlib.sha1()
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        git_blob.update(f"blob {size}\0".encode())
        for chunk in _chunks(content, 0, size):
            sha256.update(chunk)
            git_blob.update(chunk)
        pointer_size = None
        blob_id = git_blob.hexdigest()
        if lfs:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256.hexdigest()}\nsize {size}\n"
            pointer_size = len(pointer)
            blob_id = hashlib.sha1(f"blob {pointer_size}\0{pointer}".encode()).hexdigest()
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(commit=hashlib.sha1(repo_id.encode()).hexdigest()))
            hosted = HostedFile(repo_id, filename, size, sha256.hexdigest(), blob_id, pointer_size, repo.commit)
            repo.files[filename] = (hosted, content)
        return hosted

    def require_token(self, repo_id: str, token: str) -> None:
        """The repository answers 401 unless the request carries ``Authorization: Bearer token``."""
        with self._lock:
            self._repos[repo_id].token = token

    # -------------------------------------------------------------------------- faults

    def fail(self, repo_id: str, filename: str, status: int, *, times: int | None = None) -> None:
        """Resolve requests (HEAD and GET) for the file answer ``status``."""
        self._add_fault(repo_id, filename, _Fault("status", times, status=status))

    def drop_connection(self, repo_id: str, filename: str, *, at: int, times: int | None = 1) -> None:
        """Closes the connection once the bytes before offset ``at`` were sent."""
        self._add_fault(repo_id, filename, _Fault("drop", times, offset=at))

    def corrupt(self, repo_id: str, filename: str, *, at: int, times: int | None = None) -> None:
        """Sends the byte at offset ``at`` flipped."""
        self._add_fault(repo_id, filename, _Fault("corrupt", times, offset=at))

    def stall(self, repo_id: str, filename: str, *, at: int) -> Stall:
        """Stops sending at offset ``at``, once, until the returned stall is released."""
        stall = Stall(at)
        self._add_fault(repo_id, filename, _Fault("stall", 1, offset=at, stall=stall))
        with self._lock:
            self._stalls.append(stall)
        return stall

    def _add_fault(self, repo_id: str, filename: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault((repo_id, filename), []).append(fault)

    def _take_fault(
        self, hosted: HostedFile, kind: str, applies: Callable[[_Fault], bool] = lambda fault: True
    ) -> _Fault | None:
        with self._lock:
            for fault in self._faults.get((hosted.repo_id, hosted.filename), []):
                if fault.kind == kind and fault.times != 0 and applies(fault):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # ------------------------------------------------------------------------ requests

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, filename: str, method: str | None = None) -> list[RecordedRequest]:
        """Resolve and CDN requests for ``filename``, in order."""
        return [
            request
            for request in self.requests
            if request.file == filename and (method is None or request.method == method)
        ]

    # ------------------------------------------------------------------------ handling

    def _handle(self, handler: _Handler) -> None:
        target = handler.path
        proxied = target.startswith("http://")
        if proxied:
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            self._requests.append(RecordedRequest(handler.command, target, headers, handler.server.origin, proxied))
        url = urlsplit(target)
        query = parse_qs(url.query)
        try:
            if match := _CDN.fullmatch(url.path):
                self._serve_cdn(handler, match["sha256"], unquote(match["file"]))
            elif match := _RESOLVE.fullmatch(url.path):
                repo_id = unquote(match["repo"])
                repo = self._authorized_repo(handler, repo_id)
                self._check_revision(repo_id, repo, unquote(match["revision"]))
                self._serve_resolve(handler, repo, unquote(match["file"]))
            elif url.path == "/api/models" and handler.command == "GET":
                self._send_json(handler, self._list_models(query))
            elif (match := _PATHS_INFO.fullmatch(url.path)) and handler.command == "POST":
                repo = self._authorized_repo(handler, match["repo"])
                self._check_revision(match["repo"], repo, unquote(match["revision"]))
                form = parse_qs(body.decode())
                self._send_json(handler, self._paths_info(repo, form.get("paths", []), _is_true(form, "expand")))
            elif (match := _TREE.fullmatch(url.path)) and handler.command == "GET":
                repo = self._authorized_repo(handler, match["repo"])
                self._check_revision(match["repo"], repo, unquote(match["revision"]))
                folder = unquote(match["path"] or "").strip("/")
                self._send_json(
                    handler, self._tree(repo, folder, _is_true(query, "recursive"), _is_true(query, "expand"))
                )
            elif (match := _MODEL_API.fullmatch(url.path)) and handler.command == "GET":
                repo = self._authorized_repo(handler, match["repo"])
                if match["revision"] is not None:
                    self._check_revision(match["repo"], repo, unquote(match["revision"]))
                self._send_json(handler, self._model_info(match["repo"], repo, query))
            else:
                raise _HubError(404, "Not found")
        except _HubError as error:
            self._send_error(handler, error)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client went away (timed out, stopped)

    def _authorized_repo(self, handler: _Handler, repo_id: str) -> _Repo:
        with self._lock:
            repo = self._repos.get(repo_id)
        if repo is None:
            raise _HubError(404, f"Repository {repo_id} not found", code="RepoNotFound")
        if repo.token is not None:
            sent = handler.headers.get("Authorization")
            if sent is None:
                raise _HubError(
                    401, f"Access to model {repo_id} is restricted. You must be authenticated.", code="GatedRepo"
                )
            if sent != f"Bearer {repo.token}":
                raise _HubError(401, "Invalid credentials in Authorization header")
        return repo

    @staticmethod
    def _check_revision(repo_id: str, repo: _Repo, revision: str) -> None:
        if revision not in ("main", repo.commit):
            raise _HubError(404, f"Invalid rev id: {revision} for {repo_id}", code="RevisionNotFound")

    def _serve_resolve(self, handler: _Handler, repo: _Repo, filename: str) -> None:
        if filename not in repo.files:
            raise _HubError(404, f"Entry not found: {filename}", code="EntryNotFound", commit=repo.commit)
        hosted, content = repo.files[filename]
        if fault := self._take_fault(hosted, "status"):
            raise _HubError(fault.status, f"Injected error {fault.status}")
        headers = {"X-Repo-Commit": hosted.commit}
        if hosted.lfs:
            headers |= {
                "ETag": f'"{hosted.sha256}"',
                "X-Linked-Etag": f'"{hosted.sha256}"',
                "X-Linked-Size": str(hosted.size),
                "Location": f"{self.cdn_endpoint}/cdn/{hosted.sha256}/{quote(filename)}",
                "Content-Length": "0",
            }
            self._send_headers(handler, 302, headers)
            return
        self._send_content(handler, hosted, content, {**headers, "ETag": f'"{hosted.blob_id}"'})

    def _serve_cdn(self, handler: _Handler, sha256: str, filename: str) -> None:
        with self._lock:
            found = [
                entry
                for repo in self._repos.values()
                for entry in repo.files.values()
                if entry[0].sha256 == sha256 and entry[0].filename == filename
            ]
        if not found:
            raise _HubError(404, "No such blob")
        hosted, content = found[0]
        self._send_content(handler, hosted, content, {"ETag": f'"{sha256}"'})

    def _send_content(self, handler: _Handler, hosted: HostedFile, content: bytes | Path, headers: dict) -> None:
        size, start, end, status = hosted.size, 0, hosted.size, 200
        if range_header := handler.headers.get("Range"):
            match = _RANGE.fullmatch(range_header.strip())
            if match is None or int(match[1]) >= size:
                raise _HubError(416, "Range not satisfiable", extra={"Content-Range": f"bytes */{size}"})
            start, end, status = int(match[1]), min(size, int(match[2] or size - 1) + 1), 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{size}"}
        headers = {
            **headers,
            "Content-Length": str(end - start),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        self._send_headers(handler, status, headers)
        if handler.command == "HEAD":
            return
        within = lambda fault: start <= fault.offset < end
        drop = self._take_fault(hosted, "drop", within)
        stall = self._take_fault(hosted, "stall", within)
        corrupt = self._take_fault(hosted, "corrupt", within)
        position = start
        for chunk in _chunks(content, start, end):
            if corrupt and position <= corrupt.offset < position + len(chunk):
                index = corrupt.offset - position
                chunk = chunk[:index] + bytes([chunk[index] ^ 0xFF]) + chunk[index + 1 :]
            if stall and position <= stall.offset < position + len(chunk):
                handler.wfile.write(chunk[: stall.offset - position])
                handler.wfile.flush()
                stall.stall.released.wait()
                chunk = chunk[stall.offset - position :]
                position = stall.offset
            if drop and position <= drop.offset < position + len(chunk):
                handler.wfile.write(chunk[: drop.offset - position])
                handler.wfile.flush()
                handler.close_connection = True  # the client sees the body end early
                return
            handler.wfile.write(chunk)
            position += len(chunk)

    # ------------------------------------------------------------------------ API data

    def _model_info(self, repo_id: str, repo: _Repo, query: dict[str, list[str]]) -> dict:
        with_blobs = _is_true(query, "blobs")
        siblings = []
        for hosted, _ in repo.files.values():
            sibling: dict = {"rfilename": hosted.filename}
            if with_blobs:
                sibling |= {"size": hosted.size, "blobId": hosted.blob_id}
                if hosted.lfs:
                    sibling["lfs"] = {"sha256": hosted.sha256, "size": hosted.size, "pointerSize": hosted.pointer_size}
            siblings.append(sibling)
        info = {
            "_id": repo.commit[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": repo.commit,
            "lastModified": COMMIT_DATE,
            "createdAt": COMMIT_DATE,
            "private": False,
            "gated": "manual" if repo.token else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "library_name": "gguf",
            "tags": ["gguf"],
            "siblings": siblings,
        }
        if expand := query.get("expand") or query.get("expand[]"):
            info = {key: value for key, value in info.items() if key in ("_id", "id", *expand)}
        return info

    def _list_models(self, query: dict[str, list[str]]) -> list[dict]:
        search = (query.get("search") or [""])[0].lower()
        author = (query.get("author") or [None])[0]
        with self._lock:
            repos = dict(self._repos)
        listed = [
            self._model_info(repo_id, repo, {"expand": query.get("expand", [])} if "expand" in query else {})
            for repo_id, repo in sorted(repos.items())
            if search in repo_id.lower() and author in (None, repo_id.split("/")[0])
        ]
        for info in listed:
            if "full" not in query and "expand" not in query:
                info.pop("siblings", None)
        return listed[: int((query.get("limit") or [len(listed)])[0])]

    def _paths_info(self, repo: _Repo, paths: list[str], expand: bool) -> list[dict]:
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in repo.files:
                entries.append(self._file_entry(repo.files[path][0], expand))
            elif any(name.startswith(f"{path}/") for name in repo.files):
                entries.append(_folder_entry(path))
        return entries

    def _tree(self, repo: _Repo, folder: str, recursive: bool, expand: bool) -> list[dict]:
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict] = {}
        for name, (hosted, _) in sorted(repo.files.items()):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                sub_folder = prefix + "/".join(parts[:depth])
                entries.setdefault(sub_folder, _folder_entry(sub_folder))
            if recursive or len(parts) == 1:
                entries[name] = self._file_entry(hosted, expand)
        return list(entries.values())

    @staticmethod
    def _file_entry(hosted: HostedFile, expand: bool) -> dict:
        entry: dict = {"type": "file", "oid": hosted.blob_id, "size": hosted.size, "path": hosted.filename}
        if hosted.lfs:
            entry["lfs"] = {"oid": hosted.sha256, "size": hosted.size, "pointerSize": hosted.pointer_size}
        if expand:
            entry["lastCommit"] = {"id": hosted.commit, "title": "Upload model", "date": COMMIT_DATE}
        return entry

    # ------------------------------------------------------------------------ sending

    @staticmethod
    def _send_headers(handler: _Handler, status: int, headers: dict[str, str]) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()

    def _send_json(self, handler: _Handler, data: object) -> None:
        body = json.dumps(data).encode()
        self._send_headers(handler, 200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _send_error(self, handler: _Handler, error: _HubError) -> None:
        body = json.dumps({"error": error.message}).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "X-Error-Message": error.message,
        }
        if error.code:
            headers["X-Error-Code"] = error.code
        if error.commit:
            headers["X-Repo-Commit"] = error.commit
        self._send_headers(handler, error.status, headers | error.extra)
        if handler.command != "HEAD":
            handler.wfile.write(body)


class _HubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        commit: str | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.commit, self.extra = status, message, code, commit, extra or {}


def _folder_entry(path: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}


def _is_true(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() in ("1", "true")


def _chunks(content: bytes | Path, start: int, end: int) -> Iterator[bytes]:
    if isinstance(content, bytes):
        for offset in range(start, end, _SEND_CHUNK_BYTES):
            yield content[offset : min(end, offset + _SEND_CHUNK_BYTES)]
        return
    with content.open("rb") as file:
        file.seek(start)
        remaining = end - start
        while remaining > 0 and (chunk := file.read(min(_SEND_CHUNK_BYTES, remaining))):
            remaining -= len(chunk)
            yield chunk
