#!/usr/bin/env python3
"""Writes starting inputs for the `http` fuzz target into corpus/http/: one raw HTTP/1 request
per route the tests exercise (REST, the five dialects, admin, ops), with a valid bearer token,
the dialects' user headers and a small JSON body, so the fuzzer starts inside every handler.
Run from the repository root: python3 server/fuzz/seed_http.py (then `cargo fuzz cmin`)."""
import hashlib, json, pathlib, re

root = pathlib.Path(__file__).resolve().parents[2]
out = root / "server/fuzz/corpus/http"
out.mkdir(parents=True, exist_ok=True)

bases = {
    "anychat": ["/compat/anychat/api/v1", "/compat/anychat/api"],
    "gochat": ["/compat/gochat/api"],
    "flutter": ["/compat/flutter/v1", "/compat/flutter"],
    "imsys": ["/compat/imsys"],
    "wetty": ["/compat/wetty"],
}
path_re = re.compile(r'"(/[A-Za-z0-9_./{}:?=&-]*)"')
method_re = re.compile(r'\b(GET|POST|PUT|PATCH|DELETE)\b', re.I)

def paths(files):
    for f in files:
        for line in f.read_text(errors="ignore").splitlines():
            for p in path_re.findall(line):
                if "//" in p or p.endswith(".rs"):
                    continue
                ms = {m.upper() for m in method_re.findall(line)}
                yield re.sub(r"\{[^}]*\}", "1", p), ms or {"GET", "POST"}

routes = set()
for name, prefixes in bases.items():
    files = list((root / "server/tests").glob(f"compat_{name}*.rs"))
    files += list((root / f"admin-http/src/compat/{name}").rglob("*.rs"))
    for p, ms in paths(files):
        for prefix in prefixes if not p.startswith("/compat") else [""]:
            for m in ms:
                routes.add((m, prefix + p))
for p, ms in paths(list((root / "server/tests").glob("*.rs"))
                   + list((root / "admin-http/src/rest").rglob("*.rs"))
                   + list((root / "admin-http/src/ops").rglob("*.rs"))
                   + list((root / "admin-http/src/files").rglob("*.rs"))):
    if p.startswith(("/im/", "/admin/", "/api/", "/ws", "/health", "/ready", "/metrics", "/app", "/compat/")):
        for m in ms:
            routes.add((m, p))

body = json.dumps({
    "username": "alice", "account": "alice", "password": "password-123", "content": "hi",
    "text": "hi", "name": "g", "nickname": "n", "userId": 2, "user_id": 2, "members": [2],
    "memberIds": [2], "type": 1, "conversation_id": "1", "client_msg_id": "m1",
}).encode()
for method, path in sorted(routes):
    token = "admin-token" if path.startswith("/admin") else "fuzz-token"
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"X-User-ID: 1\r\nContent-Type: application/json\r\n")
    if method in ("POST", "PUT", "PATCH"):
        raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    else:
        raw = (head + "\r\n").encode()
    data = b"\x00" + raw
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
print(f"{len(routes)} requests in {out}")
