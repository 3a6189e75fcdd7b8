#!/usr/bin/env python3
"""Writes starting inputs for the `tls` fuzz target: real ClientHellos (TLS 1.3 and 1.2, ALPN
parley/1, SNI localhost) made by Python's ssl module, for both server configurations (first
byte 0: no early data, 1: early data) and whole or in 11-byte reads.
Run from the repository root: python3 server/fuzz/seed_tls.py"""
import hashlib, pathlib, ssl

root = pathlib.Path(__file__).resolve().parents[2]
out = root / "server/fuzz/corpus/tls"
out.mkdir(parents=True, exist_ok=True)
n = 0
for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(["parley/1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        conn.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    for first in (0, 1, 2, 3):
        data = bytes([first]) + hello
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
        n += 1
print(f"{n} inputs in {out}")
