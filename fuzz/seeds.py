#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: a few small valid
inputs per target, in each target's input format (see the doc comment at
the top of fuzz_targets/<target>.rs). The output is checked in; rerun after
changing a format:  python3 fuzz/seeds.py

Targets whose input is `arbitrary`-structured (the session ones) start from
a few byte strings only; libFuzzer builds on them quickly.
"""
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def ws_frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44", rsv1=False):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def websocket_frames():
    # [cfg, limit, split_seed, wire...]; cfg bit 0: client role (unmasked
    # input), bit 1: permessage-deflate.
    text = ws_frame(1, b"hello")
    frag = ws_frame(1, b"hel", fin=False) + ws_frame(9, b"p") + ws_frame(0, b"lo")
    close = ws_frame(8, b"\x03\xe8bye")
    # "hello" deflated without the 00 00 ff ff tail (RFC 7692 7.2.3.1).
    deflated = ws_frame(1, bytes.fromhex("f248cdc9c90700"), rsv1=True)
    return {
        "text": b"\x00\x00\x07" + text,
        "fragmented_ping_close": b"\x00\x00\x85" + frag + close,
        "binary_16bit_len": b"\x00\x00\x13" + ws_frame(2, bytes(range(200))),
        "client_role": b"\x01\x00\x07" + ws_frame(1, b"hi", mask=None) + ws_frame(10, b"", mask=None),
        "deflate": b"\x02\x00\x07" + deflated,
        "small_limit": b"\x00\x04\x07" + text,
    }


def websocket_handshake():
    req = (
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x, stomp\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    )
    resp = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
    )
    return {
        "request": b"\x00" + req,
        "response": b"\x01" + resp,
        "pair": b"\x02" + bytes(range(1, 64)),
        "pair_deflate": b"\x02\x01\x01\x00\x0f\x0f\x06\x00\x01\x01\x01\x0e\x09\x06\x00" + b"\x05chat\x01" * 4,
    }


def engineio_packet():
    # [mode, text...]; mode%3: 0 payload, 1 packet (bit 7: binary frames), 2 query.
    return {
        "payload": b"\x00" + b"4hello\x1e4world\x1ebAQIDBA==\x1e2probe\x1e3\x1e6",
        "payload_error": b"\x00" + b"4a\x1ex\x1e4b",
        "packet_text": b"\x01" + b"4h\xc3\xa9llo",
        "packet_binary": b"\x81" + b"bAQID-_=",
        "query_handshake": b"\x02" + b"EIO=4&transport=polling&t=N8hyd6w",
        "query_session": b"\x06" + b"EIO=4&transport=websocket&sid=abc%20d&b64=1",
    }


def engineio_session():
    return {
        "a": bytes(range(0, 48)),
        "b": bytes([1, 0, 0] + [i * 37 % 256 for i in range(64)]),
    }


def socketio_packet():
    def msgs(*parts):
        out = b""
        for binary, m in parts:
            out += bytes([1 if binary else 0, len(m)]) + m
        return out

    return {
        "json": b"\x00" + b'{"a":[1,2.5,-0,1e21,"\\u2028",null,true],"b":{}}',
        "event": b"\x0a" + msgs((False, b'2/chat,7["msg",{"x":1}]')),
        "connect_ack": b"\x0a" + msgs((False, b"0/admin,{\"token\":\"t\"}"), (False, b"3/admin,7[1]")),
        "binary_event": b"\x0a"
        + msgs((False, b'51-/a,7["up",{"_placeholder":true,"num":0}]'), (True, b"\x89PNG")),
        "binary_ack": b"\x0a"
        + msgs(
            (False, b'62-[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]'),
            (True, b"a"),
            (True, b"b"),
        ),
        "errors": b"\x0a" + msgs((False, b"4\"nope\""), (False, b"1"), (True, b"x")),
    }


def sockjs_frames():
    # [mode, ...]; mode%6: 0 route, 1 xhr_send, 2 jsonp_send (mode>>3 picks
    # the content type), 3 ws message, 4 quote, 5 close frame.
    return {
        "route": b"\x00" + b"/000/abc/jsonp?c=cb&x=1",
        "route_info": b"\x00" + b"/info/",
        "xhr_send": b"\x01" + b'["a","b\\u2028","\\ud83d\\ude00"]',
        "jsonp_form": b"\x0a" + b"d=%5B%22x%22%5D&e=1",
        "jsonp_text": b"\x1a" + b'"[\\"x\\"]"',
        "ws": b"\x03" + b'["a\\n","b"]',
        "ws_string": b"\x03" + b'"a"',
        "quote": b"\x04" + "say \"hi\"\n\u2028\U0001F600\ufff0<\x00".encode(),
        "close": b"\x05" + b"Go away!",
    }


def sockjs_session():
    return {
        "a": bytes(range(0, 40)),
        "b": bytes([0, 2, 0, 0, 0] + [i * 53 % 256 for i in range(64)]),
    }


def stomp_frames():
    # [cfg, split_seed, bytes...]; cfg & 3: version (0 1.0, 1 1.1, 2 1.2),
    # bit 2: small limits.
    return {
        "send_12": b"\x02\x07" + b"SEND\ndestination:/queue/a\nreceipt:r\\c1\n\nhi\x00\n\n",
        "crlf_11": b"\x01\x07" + b"SUBSCRIBE\r\nid:0\r\ndestination:/topic/x\r\n\r\n\x00\r\n",
        "content_length": b"\x02\x85" + b"SEND\ndestination:/q\ncontent-length:3\n\na\x00b\x00",
        "connect_10": b"\x00\x07" + b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nheart-beat:0,0\n\n\x00",
        "message_escapes": b"\x02\x07" + b"MESSAGE\nk\\c\\n:v\\\\\\r\ncontent-type:text/plain\n\nbody\x00",
        "small_limits": b"\x06\x07" + b"SEND\ndestination:/queue/a\n\nhello world\x00",
    }


def stomp_session():
    return {
        "a": bytes(range(0, 40)),
        "b": bytes([1, 0, 0, 0, 2, 3] + [i * 29 % 256 for i in range(64)]),
    }


def main():
    for name, fn in [
        ("websocket_frames", websocket_frames),
        ("websocket_handshake", websocket_handshake),
        ("engineio_packet", engineio_packet),
        ("engineio_session", engineio_session),
        ("socketio_packet", socketio_packet),
        ("sockjs_frames", sockjs_frames),
        ("sockjs_session", sockjs_session),
        ("stomp_frames", stomp_frames),
        ("stomp_session", stomp_session),
    ]:
        d = os.path.join(ROOT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for seed, data in fn().items():
            with open(os.path.join(d, seed), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
