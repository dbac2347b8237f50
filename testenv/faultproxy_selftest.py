#!/usr/bin/env python3
"""Self-test of testenv/faultproxy.py against running peers (run with testenv/.venv/bin/python).

    faultproxy_selftest.py --kafka 127.0.0.1:29092 --s3 http://127.0.0.1:29000 \
        [--access-key K --secret-key S --region us-east-1]

Starts its own faultproxy instances (ports picked by the proxy), checks every mode against a
Kafka broker (raw ApiVersions on one socket, plus confluent-kafka through --kafka-rewrite) and
an S3 server (boto3 with retries, raw keep-alive + chunked HTTP). Exits 1 if a check fails.
"""
import argparse
import http.client
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
FAILED = []
PROCS = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}", flush=True)
    if not ok:
        FAILED.append(name)


class Proxy:
    def __init__(self, upstream, *extra):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="faultproxy-", suffix=".log")
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "faultproxy.py"),
                                   "--listen", "127.0.0.1:0", "--upstream", upstream,
                                   "--max-secs", "600", *extra],
                                  stdout=subprocess.PIPE, stderr=self.log, text=True)
        PROCS.append(self.p)
        self.listen = self.p.stdout.readline().split()[1]
        self.ctl = self.p.stdout.readline().split()[1]
        self.port = int(self.listen.rsplit(":", 1)[1])
        self.upstream = upstream

    def mode(self, mode, **kw):
        req = urllib.request.Request(f"http://{self.ctl}/mode", method="POST",
                                     data=json.dumps(dict(kw, mode=mode)).encode())
        return json.load(urllib.request.urlopen(req, timeout=5))

    def stats(self):
        return json.load(urllib.request.urlopen(f"http://{self.ctl}/stats", timeout=5))

    def faults(self, kind):
        return self.stats()["faults"].get(kind, 0)


def api_versions(port, timeout=5.0):
    """One raw Kafka ApiVersions v0 round trip; returns (bytes received, seconds, error)."""
    t0, got = time.monotonic(), b""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        body = struct.pack(">hhih", 18, 0, 7, 4) + b"test"
        s.sendall(struct.pack(">i", len(body)) + body)
        while True:
            d = s.recv(65536)
            if not d:
                return got, time.monotonic() - t0, "eof"
            got += d
            if len(got) >= 4 and len(got) >= 4 + struct.unpack(">i", got[:4])[0]:
                s.close()
                return got, time.monotonic() - t0, None
    except socket.timeout:
        return got, time.monotonic() - t0, "timeout"
    except ConnectionResetError:
        return got, time.monotonic() - t0, "reset"


def kafka_checks(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    plain = Proxy(bootstrap)
    md = AdminClient({"bootstrap.servers": plain.listen}).list_topics(timeout=10)
    adv = sorted(f"{b.host}:{b.port}" for b in md.brokers.values())
    print(f"INFO broker advertises {adv} in Metadata (proxy at {plain.listen}): without "
          f"--kafka-rewrite only the bootstrap connection goes through the proxy")
    px = Proxy(bootstrap, "--kafka-rewrite")
    md = AdminClient({"bootstrap.servers": px.listen}).list_topics(timeout=10)
    adv = sorted(f"{b.host}:{b.port}" for b in md.brokers.values())
    check("kafka-rewrite advertises the proxy", adv == [px.listen], str(adv))
    topic = f"fp-selftest-{int(time.time())}"
    a = AdminClient({"bootstrap.servers": px.listen})
    for f in a.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "-1"})]).values():
        f.result()
    before = px.stats()["bytes_client_to_upstream"]
    p = Producer({"bootstrap.servers": px.listen, "linger.ms": 5})
    for i in range(20):
        p.produce(topic, value=b"%04d" % i + b"x" * 1000)
    check("kafka produce through proxy", p.flush(15) == 0)
    sent = px.stats()["bytes_client_to_upstream"] - before
    check("kafka produce bytes went through the proxy", sent > 20000, f"{sent} bytes")
    # librdkafka survives resets: the next two connections' responses are reset
    px.mode("reset", after_bytes=0, count=2)
    p.produce(topic, value=b"after-reset")
    check("kafka produce retried over resets", p.flush(30) == 0, str(px.stats()["faults"]))
    c = Consumer({"bootstrap.servers": px.listen, "group.id": topic, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, end = [], time.time() + 20
    while len(got) < 21 and time.time() < end:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    check("kafka consume through proxy", len(got) == 21 and got[-1] == b"after-reset",
          f"{len(got)}")

    # raw single-socket checks of every mode
    ok = api_versions(px.port)
    check("raw pass", ok[2] is None and len(ok[0]) > 10, f"{len(ok[0])} bytes")
    n = len(ok[0])
    px.mode("latency", ms=300)
    r = api_versions(px.port)
    check("raw latency", r[2] is None and r[1] >= 0.55, f"{r[1]:.2f}s")
    px.mode("truncate", after_bytes=10)
    r = api_versions(px.port)
    check("raw truncate", r[2] == "eof" and len(r[0]) == 10, f"{len(r[0])} of {n} bytes, {r[2]}")
    px.mode("reset", after_bytes=0)
    r = api_versions(px.port)
    check("raw reset", r[2] == "reset" and r[0] == b"", str(r[2]))
    px.mode("halfopen")
    r = api_versions(px.port, timeout=2)
    check("raw halfopen (new connection)", r[2] == "timeout", f"{r[2]} after {r[1]:.1f}s")
    px.mode("refuse")
    r = api_versions(px.port)
    check("raw refuse", r[2] in ("eof", "reset") and r[1] < 1, f"{r[2]}")
    px.mode("stall", secs=1.5)
    r = api_versions(px.port)
    check("raw stall", r[2] is None and r[1] >= 1.3, f"{r[1]:.2f}s")
    check("stall ends in pass", px.stats()["mode"]["mode"] == "pass")
    px.mode("reset", after_bytes=0, count=1)
    r1, r2 = api_versions(px.port), api_versions(px.port)
    check("count: one reset then pass", r1[2] == "reset" and r2[2] is None
          and px.stats()["mode"]["mode"] == "pass")
    # halfopen on an existing connection: the second request gets no answer
    s = socket.create_connection(("127.0.0.1", px.port), timeout=2)
    body = struct.pack(">hhih", 18, 0, 8, 4) + b"test"
    s.sendall(struct.pack(">i", len(body)) + body)
    first = s.recv(65536)
    px.mode("halfopen")
    s.sendall(struct.pack(">i", len(body)) + body)
    try:
        late = s.recv(65536)
    except socket.timeout:
        late = "timeout"
    check("raw halfopen (existing connection)", len(first) > 10 and late == "timeout",
          str(late)[:20])
    s.close()
    px.mode("pass")
    st = px.stats()
    print("INFO kafka proxy stats:", json.dumps(st))
    return plain, px


def s3_client(args, endpoint, **cfg):
    return boto3.client("s3", endpoint_url=endpoint, region_name=args.region,
                        aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
                        config=Config(**cfg))


def s3_checks(args):
    up = args.s3.split("://", 1)[-1]
    px = Proxy(up)
    ep = f"http://{px.listen}"
    retry = {"retries": {"mode": "standard", "max_attempts": 5}}
    s3 = s3_client(args, ep, **retry)
    bucket = args.bucket
    try:
        s3.create_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_object(Bucket=bucket, Key="k0", Body=b"zero")
    check("s3 pass", s3.get_object(Bucket=bucket, Key="k0")["Body"].read() == b"zero")

    px.mode("http_error", status=503, every=3)
    ok = True
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"v%d" % i)
        ok &= s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read() == b"v%d" % i
    check("s3 http_error 503 every 3, boto3 retries", ok and px.faults("http_error") >= 4,
          f"{px.faults('http_error')} injected of {px.stats()['http_requests']} requests")
    once = s3_client(args, ep, retries={"mode": "standard", "total_max_attempts": 1})
    # a file-like body makes botocore send "Expect: 100-continue": injected before the body
    px.mode("http_error", status=503, every=1, count=1)
    s3.put_object(Bucket=bucket, Key="exp", Body=io.BytesIO(b"e" * 5000))
    check("s3 http_error with Expect: 100-continue, boto3 retries",
          s3.get_object(Bucket=bucket, Key="exp")["Body"].read() == b"e" * 5000
          and px.stats()["mode"]["mode"] == "pass")
    bad = urllib.request.Request(f"http://{px.ctl}/mode", data=b'{"mode": "nope"}', method="POST")
    try:
        urllib.request.urlopen(bad, timeout=5)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    check("control rejects an unknown mode", code == 400, str(code))
    px.mode("http_error", status=503, every=1, count=1)
    try:
        once.head_bucket(Bucket=bucket)  # HEAD: error without a body
        once.get_object(Bucket=bucket, Key="k0")
        code = "none"
    except botocore.exceptions.ClientError as e:
        code = f'{e.response["ResponseMetadata"]["HTTPStatusCode"]} {e.response["Error"]["Code"]}'
    try:
        once.get_object(Bucket=bucket, Key="k0")
        code2 = "none"
    except botocore.exceptions.ClientError as e:
        code2 = e.response["Error"]["Code"]
    check("s3 injected error seen by boto3 (no retries)", code.startswith("503") and code2 == "none"
          and px.stats()["mode"]["mode"] == "pass", f"{code} then {code2}")

    # raw keep-alive connection with a chunked PUT: request 2 of every 2 is injected (500)
    px.mode("http_error", status=500, every=2)
    c = http.client.HTTPConnection(px.listen, timeout=10)
    body = b"chunked-body-" * 500
    res = []
    seq = (("PUT", body), ("GET", None), ("GET", None), ("PUT", b"other" * 999), ("GET", None))
    for method, data in seq:  # request 4, an injected chunked PUT, must be swallowed whole
        key = "ck"
        req = AWSRequest(method, f"{ep}/{bucket}/{key}", data=data)
        SigV4Auth(Credentials(args.access_key, args.secret_key), "s3", args.region).add_auth(req)
        h = dict(req.headers.items())
        if data:
            c.request(method, f"/{bucket}/{key}", body=iter([data[:1000], data[1000:]]),
                      headers=h, encode_chunked=True)
        else:
            c.request(method, f"/{bucket}/{key}", headers=h)
        r = c.getresponse()
        res.append((r.status, r.read()))
    c.close()
    check("s3 keep-alive + chunked request parsing",
          [s for s, _ in res] == [200, 500, 200, 500, 200]
          and b"<Code>InternalError</Code>" in res[1][1] and res[2][1] == res[4][1] == body,
          str([s for s, _ in res]))

    px.mode("stall", secs=2)
    t0 = time.monotonic()
    v = s3.get_object(Bucket=bucket, Key="k1")["Body"].read()
    check("s3 stall 2s then resume", v == b"v1" and time.monotonic() - t0 >= 1.8,
          f"{time.monotonic() - t0:.2f}s")
    px.mode("stall", secs=60)
    threading.Timer(1.0, lambda: px.mode("pass")).start()
    t0 = time.monotonic()
    v = s3.get_object(Bucket=bucket, Key="k2")["Body"].read()
    check("s3 stall ended early by POST pass", v == b"v2" and 0.8 < time.monotonic() - t0 < 5,
          f"{time.monotonic() - t0:.2f}s")

    px.mode("reset", count=1, after_bytes=0)
    v = s3.get_object(Bucket=bucket, Key="k3")["Body"].read()
    check("s3 reset once, boto3 retries", v == b"v3" and px.faults("reset") == 1)
    # truncate inside the status line: boto3 retries on a new connection. (Cut inside the
    # headers instead, Python's http.client takes "HTTP/1.1 200 OK\r\nSer<FIN>" as a 200.)
    px.mode("truncate", count=1, after_bytes=8)
    try:
        v = s3.list_objects_v2(Bucket=bucket, Prefix="k3")["Contents"][0]["Key"]
    except Exception as e:  # noqa: BLE001
        v = repr(e)
    check("s3 truncate (in headers) once, boto3 call", v == "k3", v)
    # truncate inside a body: Content-Length is not met, the reader must see an error
    big = os.urandom(20000)
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    px.mode("truncate", count=1, after_bytes=5000)
    try:
        s3.get_object(Bucket=bucket, Key="big")["Body"].read()
        err = "none"
    except Exception as e:  # noqa: BLE001
        err = type(e).__name__
    again = s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big
    check("s3 truncate (in body) detected, then pass", err != "none" and again, err)
    px.mode("reset", after_bytes=0)
    try:
        once.get_object(Bucket=bucket, Key="k3")
        err = "none"
    except Exception as e:  # noqa: BLE001 - whatever botocore maps the RST to
        err = type(e).__name__
    check("s3 reset without retries fails", err != "none", err)
    px.mode("refuse", count=1)
    fresh = s3_client(args, ep, **retry)
    check("s3 refuse once, boto3 retries",
          fresh.get_object(Bucket=bucket, Key="k4")["Body"].read() == b"v4"
          and px.faults("refuse") == 1)
    px.mode("halfopen", count=1)
    slow = s3_client(args, ep, read_timeout=2, connect_timeout=2,
                     retries={"mode": "standard", "max_attempts": 3})
    t0 = time.monotonic()
    v = slow.get_object(Bucket=bucket, Key="k5")["Body"].read()
    check("s3 halfopen once: read timeout then retry", v == b"v5" and time.monotonic() - t0 >= 1.8,
          f"{time.monotonic() - t0:.2f}s")
    px.mode("latency", ms=200)
    t0 = time.monotonic()
    s3.get_object(Bucket=bucket, Key="k0")["Body"].read()
    check("s3 latency", time.monotonic() - t0 >= 0.35, f"{time.monotonic() - t0:.2f}s")
    px.mode("pass")
    print("INFO s3 proxy stats:", json.dumps(px.stats()))
    return px


def lifecycle_checks(proxies, upstream):
    for px in proxies:
        t0 = time.monotonic()
        px.p.terminate()
        rc = px.p.wait(10)
        took = time.monotonic() - t0
        check("exits on SIGTERM", took < 5, f"rc={rc} {took:.2f}s")
        px.log.seek(0)
        err = px.log.read().strip()
        check(f"proxy for {px.upstream} logged no errors", not err, err[-2000:])
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "faultproxy.py"), "--listen",
                          "127.0.0.1:0", "--upstream", upstream, "--max-secs", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    rc = p.wait(10)
    check("exits after --max-secs", time.monotonic() - t0 < 6, f"rc={rc}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kafka", required=True, help="host:port of the Kafka broker")
    ap.add_argument("--s3", required=True, help="http://host:port of the S3 server")
    ap.add_argument("--access-key", default=os.environ.get("KBO_S3_ACCESS_KEY", "test"))
    ap.add_argument("--secret-key", default=os.environ.get("KBO_S3_SECRET_KEY", "test"))
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--bucket", default=f"fp-selftest-{int(time.time())}")
    args = ap.parse_args()
    try:
        proxies = [*kafka_checks(args.kafka), s3_checks(args)]
        lifecycle_checks(proxies, args.kafka)
    except Exception as e:  # noqa: BLE001
        check("no unexpected exception", False, repr(e))
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
    print("RESULT", "FAIL " + ", ".join(FAILED) if FAILED else "all checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
