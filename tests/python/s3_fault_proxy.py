#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of an S3-compatible server (moto), on 127.0.0.1.

    s3_fault_proxy.py UPSTREAM_PORT [--port N]

Prints `listening PORT` on stdout once it accepts connections. Each connection carries one
request: it is forwarded to 127.0.0.1:UPSTREAM_PORT and the reply is sent back with
`Connection: close`. Faults are set over HTTP, on the proxy itself:

    POST /__faults   {"rules": [...], "random": {...}}   replaces the plan (and the log)
    GET  /__faults   {"injected": [{"method", "path", "action"}, ...], "requests": N}

A rule: {"method": "PUT", "path": REGEX, "action": ACTION, "skip": 0, "times": 1,
"seconds": 2}: the matching requests after the first `skip` get the fault, `times` of them.
`random`: {"seed": S, "methods": ["PUT", ...], "path": REGEX, "seconds": 1.0,
"p": {ACTION: probability, ...}}: each matching request draws one fault, or none.

ACTION is one of
    drop_reply   forward the request, then close the connection without replying: the
                 store did the work and the client never hears of it
    reset        close the connection without forwarding
    stall        wait `seconds`, then forward
    stall_reply  forward, wait `seconds`, then reply
    stall_drop   wait `seconds`, forward, then close without replying
    error500     reply 500 InternalError without forwarding
    slowdown503  reply 503 SlowDown without forwarding

Bounded: it serves until killed (the tests kill it); nothing but 127.0.0.1 is reached.
"""

import asyncio
import json
import random
import re
import sys

UPSTREAM = ("127.0.0.1", 0)
PLAN = {"rules": [], "random": None}
SEEN = {}
LOG = {"injected": [], "requests": 0}
RNG = random.Random(0)


def arm(plan):
    global RNG
    PLAN["rules"] = plan.get("rules", [])
    PLAN["random"] = plan.get("random")
    SEEN.clear()
    LOG["injected"] = []
    LOG["requests"] = 0
    RNG = random.Random((PLAN["random"] or {}).get("seed", 0))


def decide(method, path):
    """The fault for this request, or None: (action, seconds)."""
    for i, rule in enumerate(PLAN["rules"]):
        if rule.get("method", method) != method:
            continue
        if not re.search(rule.get("path", ""), path):
            continue
        SEEN[i] = SEEN.get(i, 0) + 1
        skip, times = rule.get("skip", 0), rule.get("times", 1)
        if skip < SEEN[i] <= skip + times:
            return rule["action"], rule.get("seconds", 2.0)
    r = PLAN["random"]
    if r and method in r.get("methods", [method]) and re.search(r.get("path", ""), path):
        x = RNG.random()
        for action, p in sorted(r.get("p", {}).items()):
            if x < p:
                return action, r.get("seconds", 1.0)
            x -= p
    return None


async def read_message(reader):
    """(head bytes, body bytes) of one HTTP/1.1 request; a chunked body is de-chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return lines, body


def reply(status, reason, body=b"", ctype="application/xml"):
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def s3_error(status, reason, code):
    body = f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{reason}</Message></Error>"
    return reply(status, reason, body.encode())


async def forward(lines, body):
    """The upstream's whole reply, with `Connection: close`."""
    up_reader, up_writer = await asyncio.open_connection(*UPSTREAM)
    out = [lines[0]]
    for line in lines[1:]:
        name = line.split(":", 1)[0].strip().lower()
        if line and name not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
            out.append(line)
    out.append(f"Content-Length: {len(body)}")
    out.append("Connection: close")
    up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
    await up_writer.drain()
    data = await up_reader.read()
    up_writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    kept = [l for l in head.split(b"\r\n") if not l.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join(kept + [b"Connection: close"]) + b"\r\n\r\n" + rest


async def handle(reader, writer):
    try:
        lines, body = await read_message(reader)
        method, path = lines[0].split(" ")[:2]
        if path.startswith("/__faults"):
            if method == "POST":
                arm(json.loads(body or b"{}"))
                writer.write(reply(200, "OK", b"{}", "application/json"))
            else:
                writer.write(reply(200, "OK", json.dumps(LOG).encode(), "application/json"))
            return
        LOG["requests"] += 1
        fault = decide(method, path)
        if fault:
            LOG["injected"].append({"method": method, "path": path, "action": fault[0]})
        action, seconds = fault or (None, 0)
        if action == "reset":
            return
        if action == "error500":
            writer.write(s3_error(500, "Internal Error", "InternalError"))
            return
        if action == "slowdown503":
            writer.write(s3_error(503, "Slow Down", "SlowDown"))
            return
        if action in ("stall", "stall_drop"):
            await asyncio.sleep(seconds)
        answer = await forward(lines, body)
        if action in ("drop_reply", "stall_drop"):
            return
        if action == "stall_reply":
            await asyncio.sleep(seconds)
        writer.write(answer)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    global UPSTREAM
    UPSTREAM = ("127.0.0.1", int(sys.argv[1]))
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 24)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
