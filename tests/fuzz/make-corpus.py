#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_spop.c into tests/fuzz/corpus/.

Each seed is three control bytes (how to cut the stream into reads, the output buffer,
our max-frame-size; see fuzz_spop.c) followed by what HAProxy would send. The frames are
the captures of research/spop.md (2.6.12) plus frames built with the same encoding.

    python3 tests/fuzz/make-corpus.py        # rewrites the files; deterministic
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

FIN = 1


def varint(v):
    """SPOE.txt §3.1 / HAProxy intops.h encode_varint()."""
    if v < 240:
        return bytes([v])
    out = [(v & 0xFF) | 0xF0]
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0xFF) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def string(s):
    if isinstance(s, str):
        s = s.encode()
    return varint(len(s)) + s


def t_str(s):
    return b"\x08" + string(s)


def t_uint32(v):
    return b"\x03" + varint(v)


def t_int64(v):
    return b"\x04" + varint(v & 0xFFFFFFFFFFFFFFFF)


def t_bool(b):
    return b"\x11" if b else b"\x01"


def kv(name, typed):
    return string(name) + typed


def frame(ftype, payload, sid=0, fid=0, flags=FIN):
    body = bytes([ftype]) + struct.pack(">I", flags) + varint(sid) + varint(fid) + payload
    return struct.pack(">I", len(body)) + body


def hello(versions="2.0", fs=16380, caps="pipelining,async", hc=False, engine_id=None):
    p = kv("supported-versions", t_str(versions))
    p += kv("max-frame-size", t_uint32(fs))
    p += kv("capabilities", t_str(caps))
    if hc:
        p += kv("healthcheck", t_bool(True))
    if engine_id:
        p += kv("engine-id", t_str(engine_id))
    return frame(1, p)


def message(name, args):
    return string(name) + bytes([len(args)]) + b"".join(kv(n, v) for n, v in args)


def notify(sid, fid, *messages):
    return frame(3, b"".join(messages), sid, fid)


def mtls_msg():
    return message(
        "mtls",
        [
            ("sni", t_str("www.example.com")),
            ("used", t_bool(True)),
            ("verify", t_int64(0)),
            ("der", b"\x09" + string(b"\x30\x82\x01\x00" + b"\x00" * 16)),
        ],
    )


def disconnect(status, msg, ftype=2):
    return frame(ftype, kv("status-code", t_uint32(status)) + kv("message", t_str(msg)))


# research/spop.md §1.4 / §1.6 / §1.8, byte for byte.
CAP_HELLO = hello(engine_id="0dbc8e44-c9b3-435a-a005-956de0c749d7")
CAP_HC_HELLO = hello(caps="", hc=True)
CAP_NOTIFY = notify(
    88, 1, message("conn-msg", [("src", b"\x06\x7f\x00\x00\x01"), ("dport", t_int64(9444))])
)
CAP_IDLE_DISCO = disconnect(2, "a timeout occurred")

assert len(CAP_HELLO) == 4 + 129
assert len(CAP_HC_HELLO) == 82
assert CAP_NOTIFY[:4] == b"\x00\x00\x00\x24"
assert CAP_IDLE_DISCO[:4] == b"\x00\x00\x00\x31"


def ctl(cut=0x40, out=0, fs=0xFF):
    """cut 0x40: one read; 0..63: reads of cut+1 bytes; 0x80|x: PRNG sizes."""
    return bytes([cut, out, fs])


SEEDS = {
    "hello.bin": ctl() + CAP_HELLO,
    "hello-notify.bin": ctl() + CAP_HELLO + notify(0, 1, mtls_msg()) + CAP_NOTIFY,
    "healthcheck.bin": ctl() + CAP_HC_HELLO,
    "haproxy-disconnect.bin": ctl() + CAP_HELLO + notify(1, 1, mtls_msg()) + CAP_IDLE_DISCO,
    "disconnect-only.bin": ctl() + CAP_IDLE_DISCO,
    # Bad frames: FIN clear, length over the limit, length under 7, an ACK from the peer.
    "bad-fin-clear.bin": ctl() + CAP_HELLO + notify(1, 1, mtls_msg())[:4]
    + bytes([3, 0, 0, 0, 0]) + notify(1, 1, mtls_msg())[9:],
    "bad-too-big.bin": ctl() + CAP_HELLO + b"\x00\x00\x40\x00" + b"\x03" * 32,
    "bad-too-short.bin": ctl() + CAP_HELLO + b"\x00\x00\x00\x03\x03\x00\x00",
    "bad-peer-ack.bin": ctl() + CAP_HELLO + frame(103, b"\x01\x03\x02\x02ok\x11", 88, 1),
    "bad-version.bin": ctl() + hello(versions="1.0"),
    "bad-notify-truncated.bin": ctl() + CAP_HELLO + frame(3, b"\x04mtls\x02\x03sni\x08\x10abc", 1, 1),
    # Reads one byte at a time, and PRNG-sized reads, with a small output buffer.
    "bytewise.bin": ctl(cut=0, out=1) + CAP_HELLO + notify(5, 7, mtls_msg()) + CAP_IDLE_DISCO,
    "prng-cuts.bin": ctl(cut=0x80 | 0x15, out=2 | (3 << 3))
    + CAP_HELLO
    + b"".join(notify(100 + i, i + 1, mtls_msg()) for i in range(20)),
    # A small negotiated size: ten mtls messages make an ACK too big for 256 bytes.
    "small-frame.bin": ctl(fs=0) + hello(fs=256) + notify(1, 1, *([message("mtls", [])] * 10)),
    # An unknown frame type is skipped; ids near 2^64.
    "unknown-type.bin": ctl(cut=6, out=4)
    + CAP_HELLO
    + frame(50, b"\x01\x02\x03")
    + notify(2**64 - 1, 2**63, mtls_msg()),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
