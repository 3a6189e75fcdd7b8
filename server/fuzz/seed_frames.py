#!/usr/bin/env python3
"""Writes starting inputs for the `frame` and `ws_json` fuzz targets: every case of the
`Frame` body oneof in proto/parley/v1/parley.proto, as a protobuf frame (request id 1, an empty
body message: the fuzzer fills it in) and as its proto3 JSON form, plus the JSON examples of
the docs. Run from the repository root: python3 server/fuzz/seed_frames.py"""
import hashlib, pathlib, re

root = pathlib.Path(__file__).resolve().parents[2]
proto = (root / "proto/parley/v1/parley.proto").read_text()
frame = re.search(r"^message Frame \{(.*?)^\}", proto, re.S | re.M).group(1)
cases = re.findall(r"^\s+([A-Z][A-Za-z0-9]*) ([a-z_0-9]+) = ([0-9]+);", frame, re.M)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def camel(s):
    head, *rest = s.split("_")
    return head + "".join(w.capitalize() for w in rest)

def write(target, data):
    d = root / "server/fuzz/corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)

for _, name, number in cases:
    body = b"\x08\x01" + varint(int(number) << 3 | 2) + b"\x00"
    # frame: first byte 0 (no read sizes), then the body; and the same as a length-prefixed
    # stream of two frames read in small pieces.
    write("frame", b"\x00" + body)
    prefixed = len(body).to_bytes(4, "big") + body
    write("frame", b"\x02\x01\x03" + prefixed * 2)
    write("ws_json", f'{{"requestId":"1","{camel(name)}":{{}}}}'.encode())
docs = [p.read_text() for p in (root / "docs").glob("*.md")]
for text in docs:
    for example in re.findall(r'\{"requestId"[^`\n]*\}', text):
        write("ws_json", example.encode())
print(f"{len(cases)} frame cases")
