#!/usr/bin/env python3
"""The kernel's best case for serving one file over loopback HTTP, to compare Parley against.

    python3 benches/http/sendfile-server.py FILE [PORT] [sendfile|copy]

Answers every connection's first request, whatever it asks, with `200`, `Content-Length` and
FILE's bytes, then closes. `sendfile` (the default) hands the file to the socket with
sendfile(2), with no copy through user space; `copy` reads 256 KiB at a time and writes it.
Fetch it with `imload download --url http://127.0.0.1:PORT/x --out OUT` to get the floor a
download to a file can reach on this machine (docs/BENCHMARKS.md, issue 13's download figure).
Loopback only; it serves until killed.
"""
import os
import socket
import sys


def main():
    path = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 18777
    mode = sys.argv[3] if len(sys.argv) > 3 else "sendfile"
    if mode not in ("sendfile", "copy"):
        sys.exit("mode must be sendfile or copy")
    size = os.path.getsize(path)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(head)
            with open(path, "rb") as f:
                if mode == "sendfile":
                    conn.sendfile(f)
                else:
                    while chunk := f.read(262144):
                        conn.sendall(chunk)


if __name__ == "__main__":
    main()
