"""bench/gen_compressible.py - fills a topic with compressible 1 KiB records, compressed by the
producer (librdkafka via confluent-kafka), for bench/recompress.sh.

Each record is a JSON log event of exactly --record-bytes bytes: a timestamp, level, service,
host, a random 128-bit trace id and 64-bit span id, a random user id and amount, and a message
of words drawn at random from a fixed vocabulary of --vocab words (seeded: the same data every
run). Key: `user-<id>`. With the defaults (1 KiB, 150 words) lz4 from the producer stores
about 0.45 of the payload, like the dataset of issue 19; see bench/README.md.

Prints one JSON line like kbo_data.py gen-load: records, bytes (payload), seconds, mb_per_s.
"""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testenv"))
import kbo_data  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

LEVELS = [b"INFO"] * 8 + [b"WARN", b"DEBUG", b"ERROR"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--record-bytes", type=int, default=1024)
    ap.add_argument("--codec", default="lz4", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    ap.add_argument("--vocab", type=int, default=150)
    ap.add_argument("--seed", type=int, default=19)
    a = ap.parse_args()

    rnd = random.Random(a.seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = list({"".join(rnd.choice(letters) for _ in range(rnd.randint(2, 10))).encode()
                  for _ in range(a.vocab * 2)})[:a.vocab]
    services = [f"svc-{n}".encode() for n in range(40)]
    hosts = [f"ip-10-0-{n // 256}-{n % 256}".encode() for n in range(200)]
    kbo_data.create_topics(a.bootstrap, {a.topic: (a.partitions, {"retention.ms": "-1"})})
    n = a.mib * 1024 * 1024 // a.record_bytes
    tr = kbo_data.DeliveryTracker()
    p = Producer(kbo_data.fast_producer_conf(a.bootstrap, on_delivery=tr,
                                             **{"compression.type": a.codec}))
    produce, poll, choices, getrandbits = p.produce, p.poll, rnd.choices, rnd.getrandbits
    t_base = 1_704_067_200_000
    t0 = time.monotonic()
    for i in range(n):
        ts = t_base + i * 3
        user = getrandbits(27)
        head = b'{"ts":%d,"level":"%s","service":"%s","host":"%s","trace":"%032x","span":"%016x","user":%d,"amount":%d.%02d,"msg":"' % (
            ts, rnd.choice(LEVELS), rnd.choice(services), rnd.choice(hosts),
            getrandbits(128), getrandbits(64), user, getrandbits(14), getrandbits(6) % 100)
        body = b" ".join(choices(vocab, k=(a.record_bytes - len(head)) // 5))
        rec = (head + body)[:a.record_bytes - 2]
        rec = rec + b" " * (a.record_bytes - 2 - len(rec)) + b'"}'
        while True:
            try:
                produce(a.topic, rec, b"user-%d" % user, partition=i % a.partitions, timestamp=ts)
                break
            except BufferError:
                poll(0.05)
        if i & 0x3FFF == 0:
            poll(0)
    left = p.flush(300)
    secs = time.monotonic() - t0
    if left:
        raise SystemExit(f"{left} messages not delivered")
    tr.check("gen-compressible")
    # values only: the benchmark's payload (key + value) is what bench-consume counts
    print(json.dumps(kbo_data.bench_line(n, n * a.record_bytes, secs, topic=a.topic, partitions=a.partitions,
                                         codec=a.codec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
