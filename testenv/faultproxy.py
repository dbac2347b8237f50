#!/usr/bin/env python3
"""faultproxy: a small TCP fault-injection proxy for loopback fault tests (stdlib only).

    faultproxy.py --listen 127.0.0.1:0 --upstream 127.0.0.1:19000 [--control 127.0.0.1:0]
                  [--mode '{"mode": "latency", "ms": 50}'] [--kafka-rewrite] [--max-secs 900]

Prints `LISTENING host:port` and `CONTROL host:port` (flushed) once ready; port 0 picks a
free port. Clients connect to the listen address. The control port is a tiny HTTP server:

    curl -s -XPOST 127.0.0.1:CTL/mode -d '{"mode": "http_error", "status": 503, "every": 3}'
    curl -s 127.0.0.1:CTL/stats      # connections, bytes each way, faults by kind, mode

Modes (JSON body of POST /mode). Every fault mode takes an optional "count": M; after M
injected faults the proxy goes back to "pass" by itself. Changes apply to new connections
and to existing ones (on their next chunk).
  pass                         forward both ways (the default)
  latency   {"ms": N}          delay every chunk, both directions, by N ms (fault = chunk)
  reset     {"after_bytes": N} after N more bytes upstream->client on a connection, abort
                               both sockets with RST (SO_LINGER 0) (fault = connection)
  stall     {"secs": N}        stop forwarding on all connections for N s from now, sockets
                               stay open; then back to pass (fault = connection stalled)
  halfopen                     connections become dead peers: never forward or answer again,
                               sockets stay open (fault = connection)
  truncate  {"after_bytes": N} forward N more bytes upstream->client, then close both
                               sockets cleanly (FIN), typically mid-message
  refuse                       accept new connections and close them at once
  http_error {"status": 503, "every": K, "body": "<Error>..</Error>"}
                               HTTP/1.1 upstreams (S3): every K-th request, counted over all
                               connections, is answered by the proxy with that status and an
                               S3-style XML error (SlowDown for 503, InternalError for 500)
                               instead of being forwarded. Requests are parsed (head,
                               Content-Length or chunked body, keep-alive; no pipelining).
                               With "Expect: 100-continue": error before the body, close.
HTTP parsing is switched on per connection when its first bytes look like an HTTP request.
--kafka-rewrite: Kafka brokers advertise their own host:port in Metadata, so clients go
straight to the broker after bootstrap. With this flag the proxy frames Kafka requests and
rewrites the upstream port to its own listen port in Metadata, FindCoordinator and
DescribeCluster responses (same length, in place), so all traffic stays on the proxy. The
proxy must listen on the host the broker advertises (e.g. both on 127.0.0.1).
The proxy exits on SIGTERM/SIGINT and by itself after --max-secs.
"""
import argparse
import asyncio
import json
import signal
import socket
import struct
import time
from email.utils import formatdate

CHUNK = 65536
METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ")
S3_CODES = {503: ("SlowDown", "Please reduce your request rate."),
            500: ("InternalError", "We encountered an internal error. Please try again.")}
MODES = ("pass", "latency", "reset", "stall", "halfopen", "truncate", "refuse", "http_error")


class State:
    def __init__(self):
        self.stats = {"connections": 0, "active": 0, "bytes_client_to_upstream": 0,
                      "bytes_upstream_to_client": 0, "http_requests": 0, "faults": {}}
        self.epoch, self.rewrite = 0, None
        self.set_mode({"mode": "pass"})

    def set_mode(self, m):
        if not isinstance(m, dict) or m.get("mode", "pass") not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        m = dict(m, mode=m.get("mode", "pass"), _injected=0, _requests=0)
        if m["mode"] == "stall":
            m["_until"] = time.monotonic() + float(m.get("secs", 5))
        self.mode, self.epoch = m, self.epoch + 1

    def fault(self, kind):
        """Count one injected fault; back to pass after the mode's 'count'."""
        self.stats["faults"][kind] = self.stats["faults"].get(kind, 0) + 1
        self.mode["_injected"] += 1
        if self.mode.get("count") is not None and self.mode["_injected"] >= int(self.mode["count"]):
            self.set_mode({"mode": "pass"})

    def public_mode(self):
        self.expire()
        return {k: v for k, v in self.mode.items() if not k.startswith("_")}

    def expire(self):
        """A stall window that is over turns into pass (also without traffic)."""
        if self.mode["mode"] == "stall" and time.monotonic() >= self.mode["_until"]:
            self.set_mode({"mode": "pass"})


ST = State()
TASKS = set()


class Reader:
    """Buffered reader over an asyncio StreamReader, so the first bytes can be peeked."""

    def __init__(self, r):
        self.r, self.buf = r, bytearray()

    async def fill(self):
        if not (d := await self.r.read(CHUNK)):
            raise EOFError
        self.buf += d

    async def some(self, n=CHUNK):
        if not self.buf:
            await self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def exact(self, n):
        while len(self.buf) < n:
            await self.fill()
        return await self.some(n)

    async def until(self, sep, limit=1 << 20):
        while (i := self.buf.find(sep)) < 0:
            if len(self.buf) > limit:
                raise ValueError("header too long")
            await self.fill()
        return await self.some(i + len(sep))


class Conn:
    def __init__(self, cr, cw, ur, uw):
        self.cr, self.cw, self.ur, self.uw = cr, cw, ur, uw
        self.dead = self.closed = False
        self.stalled_by = None            # the stall mode this connection was counted for
        self.epoch, self.down_bytes = ST.epoch, 0
        self.corr = {}                    # Kafka correlation id -> api key (rewrite only)

    def close(self, rst=False):
        if self.closed:
            return
        self.closed = True
        for w in (self.cw, self.uw):
            try:
                if rst:
                    s = w.get_extra_info("socket")
                    if s is not None:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    w.transport.abort()
                else:
                    w.close()
            except OSError:
                pass

    async def gate(self):
        """Wait until this connection may forward its next chunk (latency/stall/halfopen)."""
        while True:
            if self.closed:
                raise EOFError
            ST.expire()
            m = ST.mode
            if self.dead:
                await asyncio.sleep(3600)
            elif m["mode"] == "halfopen":
                self.dead = True
                ST.fault("halfopen")
            elif m["mode"] == "stall":
                if self.stalled_by is not m:
                    self.stalled_by = m
                    ST.fault("stall")
                await asyncio.sleep(min(m["_until"] - time.monotonic(), 0.05))
            else:
                if m["mode"] == "latency":
                    ST.fault("latency")
                    await asyncio.sleep(float(m.get("ms", 100)) / 1000)
                return

    async def send(self, w, data, key):
        await self.gate()
        w.write(data)
        ST.stats[key] += len(data)
        await w.drain()

    async def next_down(self):
        if not ST.rewrite:
            return await self.ur.read(CHUNK)
        try:  # one whole Kafka response frame
            hdr = await self.ur.readexactly(4)
            body = await self.ur.readexactly(struct.unpack(">i", hdr)[0])
        except asyncio.IncompleteReadError as e:
            return e.partial
        if self.corr.pop(struct.unpack(">i", body[:4])[0], None) is not None:
            body = body.replace(*ST.rewrite)
        return hdr + body

    async def down(self):
        """upstream -> client, with reset/truncate after after_bytes."""
        try:
            while data := await self.next_down():
                m = ST.mode
                if self.epoch != ST.epoch:
                    self.epoch, self.down_bytes = ST.epoch, 0
                room = int(m.get("after_bytes", 0)) - self.down_bytes
                if m["mode"] in ("reset", "truncate") and room < len(data):
                    if room > 0:
                        await self.send(self.cw, data[:room], "bytes_upstream_to_client")
                    while self.cw.transport.get_write_buffer_size():
                        await asyncio.sleep(0.01)
                    ST.fault(m["mode"])
                    if m["mode"] == "reset":
                        await asyncio.sleep(0.05)  # let the partial bytes reach the peer
                    self.close(rst=m["mode"] == "reset")
                    return
                self.down_bytes += len(data)
                await self.send(self.cw, data, "bytes_upstream_to_client")
        except (OSError, EOFError):
            pass
        self.close()

    async def up(self):
        """client -> upstream; HTTP-aware when the stream starts like an HTTP request."""
        rd = Reader(self.cr)
        try:
            await rd.fill()
            if bytes(rd.buf[:8]).startswith(METHODS):
                await self.http_up(rd)
            while not self.closed:
                if ST.rewrite:  # Kafka request frame: remember which responses to rewrite
                    frame = await rd.exact(4)
                    frame += await rd.exact(struct.unpack(">i", frame)[0])
                    api, _, corr = struct.unpack(">hhi", frame[4:12])
                    if api in (3, 10, 60):  # Metadata, FindCoordinator, DescribeCluster
                        self.corr[corr] = api
                else:
                    frame = await rd.some()
                await self.send(self.uw, frame, "bytes_client_to_upstream")
        except (EOFError, asyncio.IncompleteReadError):
            try:  # client half-closed: pass the FIN on, keep the response direction open
                if not self.closed and self.uw.can_write_eof():
                    self.uw.write_eof()
            except OSError:
                self.close()
        except (OSError, ValueError, struct.error):
            self.close()

    async def http_up(self, rd):
        while not self.closed:
            head = await rd.until(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0].upper()
            hdrs = {k.strip().lower(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in lines[1:] if ":" in ln)}
            ST.stats["http_requests"] += 1
            m, inject = ST.mode, False
            if m["mode"] == "http_error":
                m["_requests"] += 1
                inject = m["_requests"] % max(1, int(m.get("every", 1))) == 0
            keep = hdrs.get("connection", "").lower() != "close"
            if inject and hdrs.get("expect", "").lower() == "100-continue":
                return await self.answer(m, method, keep=False)  # before the body, then close
            out = None if inject else self.uw
            if out:
                await self.send(out, head, "bytes_client_to_upstream")
            if "chunked" in hdrs.get("transfer-encoding", "").lower():
                while True:
                    line = await rd.until(b"\r\n")
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    await self.body(rd, line, out)
                    if size == 0:
                        while (t := await rd.until(b"\r\n")) != b"\r\n":  # trailers
                            await self.body(rd, t, out)
                        await self.body(rd, t, out)
                        break
                    await self.body(rd, size + 2, out)
            else:
                await self.body(rd, int(hdrs.get("content-length") or 0), out)
            if inject:
                await self.answer(m, method, keep)

    async def body(self, rd, n, out):
        """Forward (or, when out is None, swallow) n body bytes, or the given bytes."""
        if isinstance(n, bytes):
            return out and await self.send(out, n, "bytes_client_to_upstream")
        while n > 0:
            d = await rd.some(min(n, CHUNK))
            n -= len(d)
            if out:
                await self.send(out, d, "bytes_client_to_upstream")

    async def answer(self, m, method, keep):
        status = int(m.get("status", 503))
        code, msg = S3_CODES.get(status, ("InjectedError", "Injected by faultproxy."))
        rid = "%016X" % (time.time_ns() * 2654435761 % (1 << 64))
        body = m.get("body") or (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}'
                                 f'</Code><Message>{msg}</Message><RequestId>{rid}</RequestId>'
                                 f'</Error>')
        body = b"" if method == "HEAD" else body.encode()
        reason = {500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\n"
                f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                f"x-amz-request-id: {rid}\r\nDate: {formatdate(usegmt=True)}\r\n"
                f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n").encode()
        ST.fault("http_error")
        self.cw.write(head + body)
        ST.stats["bytes_upstream_to_client"] += len(head) + len(body)
        await self.cw.drain()
        if not keep:
            self.close()


async def handle(cr, cw, upstream):
    task = asyncio.current_task()
    TASKS.add(task)  # strong reference: a connection waiting on closed sockets is never GC'd
    ST.stats["connections"] += 1
    ST.stats["active"] += 1
    conn = None
    try:
        if ST.mode["mode"] == "refuse":
            ST.fault("refuse")
        elif ST.mode["mode"] == "halfopen":  # a dead peer: accept, read, never answer
            ST.fault("halfopen")
            while await cr.read(CHUNK):
                pass
        else:
            ur, uw = await asyncio.open_connection(*upstream)
            conn = Conn(cr, cw, ur, uw)
            await asyncio.gather(conn.up(), conn.down())
    except (OSError, EOFError, asyncio.CancelledError):  # cancelled: the proxy is exiting
        pass
    finally:
        ST.stats["active"] -= 1
        TASKS.discard(task)
        conn.close() if conn else cw.close()


async def control(cr, cw):
    try:
        head = (await cr.readuntil(b"\r\n\r\n")).decode("latin-1")
        req = head.split("\r\n")[0].split()[:2]
        n = sum(int(ln.split(":", 1)[1]) for ln in head.split("\r\n")
                if ln.lower().startswith("content-length:"))
        body = await cr.readexactly(n) if n else b""
        status, out = 200, dict(ST.stats, mode=ST.public_mode())
        if req == ["POST", "/mode"]:
            try:
                ST.set_mode(json.loads(body or b"{}"))
                out = {"ok": True, "mode": ST.public_mode()}
            except ValueError as e:
                status, out = 400, {"ok": False, "error": str(e)}
        elif req not in (["GET", "/stats"], ["GET", "/mode"]):
            status, out = 404, {"ok": False, "error": "POST /mode or GET /stats"}
        data = json.dumps(out).encode()
        cw.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: "
                 f"{len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await cw.drain()
    except Exception:  # a broken control request must not take the proxy down
        pass
    finally:
        cw.close()


def hostport(s):
    h, _, p = s.rpartition(":")
    return h or "127.0.0.1", int(p)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, type=hostport)
    ap.add_argument("--upstream", required=True, type=hostport)
    ap.add_argument("--control", default="127.0.0.1:0", type=hostport)
    ap.add_argument("--mode", default='{"mode": "pass"}', help="initial mode as JSON")
    ap.add_argument("--kafka-rewrite", action="store_true",
                    help="rewrite the broker port in Kafka Metadata/FindCoordinator responses")
    ap.add_argument("--max-secs", type=float, default=900)
    a = ap.parse_args()
    ST.set_mode(json.loads(a.mode))
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a.upstream), *a.listen)
    ctl = await asyncio.start_server(control, *a.control)
    port = srv.sockets[0].getsockname()[1]
    if a.kafka_rewrite:
        host = a.upstream[0].encode()
        ST.rewrite = (host + struct.pack(">i", a.upstream[1]), host + struct.pack(">i", port))
    for label, s in (("LISTENING", srv), ("CONTROL", ctl)):
        print(label, "%s:%d" % s.sockets[0].getsockname()[:2], flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    deadline = time.monotonic() + a.max_secs
    while not stop.is_set() and time.monotonic() < deadline:
        ST.expire()  # the control loop: stall windows end even without traffic
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    srv.close()
    ctl.close()
    for t in TASKS:
        t.cancel()
    if TASKS:
        await asyncio.wait(list(TASKS), timeout=2)


if __name__ == "__main__":
    asyncio.run(main())
