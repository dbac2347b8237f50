#!/usr/bin/env python3
"""kbo_data.py - Kafka test-data tool for kafka-backup-operator.

Needs Python 3.11 and confluent-kafka (nothing else outside the standard library).
Run it with the test venv: ``testenv/.venv/bin/python testenv/kbo_data.py SUBCOMMAND ...``.
``--bootstrap`` defaults to ``$KBO_KAFKA_BOOTSTRAP`` (see testenv/env).

Subcommands
-----------
produce-sample  Create ``{P}plain, {P}gzip, {P}snappy, {P}lz4, {P}zstd, {P}idem, {P}txn,
                {P}large`` and fill them with a data set that exercises backup/restore
                fidelity (null vs empty keys/values, tombstones, headers with duplicates,
                binary and null values, old timestamps far apart inside one batch, every
                codec, idempotent and transactional producers incl. aborted transactions,
                a >= 600 KiB record). Prints a JSON summary (counts, min/max timestamps,
                suggested PITR windows whose bounds are exact record timestamps).
dump            Read topics from the start to the high watermark (or LSO) and write
                canonical JSON lines, sorted by topic, partition, offset.
compare         Dump source and target topics and check that every target partition holds
                exactly the (PITR-filtered) source records in order. Exit 0 / 1.
bench-consume   Baseline consumer: topics -> length-prefixed binary file; one JSON line.
bench-produce   Baseline producer: binary file -> new topics; one JSON line.
gen-load        Create a topic and fill it with N MiB of keyed records as fast as possible.
delete-topics   Delete every topic whose name starts with a prefix (test clean-up).

Broker notes (noida-db, the test broker): it applies time retention within seconds, so every
topic created here gets ``retention.ms=-1``; it ignores fetch size limits, so consumers set
``receive.message.max.bytes=2000000000``. Under read_committed it leaves aborted batches out of
Fetch responses (and also lists them in aborted_transactions), whereas Kafka sends them and
lets the client filter: client-side abort filtering is only exercised with read_uncommitted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import struct
import sys
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Iterator

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

#: Timestamp scheme of the sample data. Most records carry ``NEW_BASE_MS + seq * STEP_MS``
#: where ``seq`` is the record's index in its topic, so a PITR bound picked from the scheme
#: lands exactly on a record in every sample topic.
NEW_BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
STEP_MS = 1_000
#: Old timestamps (plain topic, partition 2) start here: 2001-01-01T00:00:00Z.
OLD_BASE_MS = 978_307_200_000
DAY_MS = 86_400_000

#: Consumer setting needed against noida-db, which ignores fetch size limits.
RECEIVE_MAX = 2_000_000_000
#: Size of the large record in ``{P}large`` (700 KiB, incompressible).
LARGE_RECORD_BYTES = 700 * 1024

SAMPLE_FEATURES = ("plain", "gzip", "snappy", "lz4", "zstd", "idem", "txn", "large")
CODECS = ("gzip", "snappy", "lz4", "zstd")

TS_TYPE_NAMES = {
    TIMESTAMP_CREATE_TIME: "CreateTime",
    TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime",
}

BENCH_MAGIC = b"KBOBENCH1\n"
#: Per-record header of the bench file: topic index u16, partition i32, timestamp i64,
#: key length i32 (-1 = null), value length i32 (-1 = null), header count u16.
REC_HDR = struct.Struct("<HiqiiH")
#: Per-header prefix: name length u16, then name (UTF-8), then value length i32 (-1 = null).
HDR_NAME = struct.Struct("<H")
HDR_VAL = struct.Struct("<i")


def log(*args: object) -> None:
    """Progress/diagnostics go to stderr so stdout stays machine-readable."""
    print(*args, file=sys.stderr, flush=True)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def split_csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --------------------------------------------------------------------------------------------
# Admin helpers
# --------------------------------------------------------------------------------------------


def admin_client(bootstrap: str) -> AdminClient:
    # log_level 4 hides the harmless "Purging unserved events" notice at exit
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})


def create_topics(bootstrap: str, specs: dict[str, tuple[int, dict[str, str]]],
                  timeout: float = 30.0) -> None:
    """Create topics ``{name: (partitions, configs)}`` and wait until their metadata shows a
    leader for every partition. Fails if a topic already exists (no silent mixing of data)."""
    admin = admin_client(bootstrap)
    new = [NewTopic(name, num_partitions=parts, replication_factor=1, config=cfg)
           for name, (parts, cfg) in specs.items()]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result()
        except KafkaException as e:
            raise SystemExit(f"create topic {name}: {e.args[0]}") from e
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=10)
        ready = all(
            name in md.topics and md.topics[name].error is None
            and len(md.topics[name].partitions) == parts
            and all(p.leader >= 0 for p in md.topics[name].partitions.values())
            for name, (parts, _cfg) in specs.items())
        if ready:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"topics not ready after {timeout}s: {sorted(specs)}")
        time.sleep(0.1)
    # Verify that the broker kept retention.ms=-1 (the noida trap: otherwise old records vanish).
    res = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in specs]
    try:
        for r, fut in admin.describe_configs(res, request_timeout=timeout).items():
            cfg = fut.result()
            want = specs[r.name][1].get("retention.ms")
            got = cfg["retention.ms"].value if "retention.ms" in cfg else None
            if want is not None and got != want:
                log(f"WARNING: topic {r.name}: retention.ms is {got!r}, asked for {want!r}")
    except KafkaException as e:  # describe is only a check; don't fail the run on it
        log(f"WARNING: describe_configs failed: {e}")


def topic_partitions(client: AdminClient | Consumer, topics: list[str]) -> dict[str, int]:
    """Partition count per topic; exits with a message for a missing topic."""
    md = client.list_topics(timeout=10)
    out = {}
    for t in topics:
        tm = md.topics.get(t)
        if tm is None or tm.error is not None:
            raise SystemExit(f"topic {t!r} not found ({tm.error if tm else 'no metadata'})")
        out[t] = len(tm.partitions)
    return out


# --------------------------------------------------------------------------------------------
# Reading: beginning -> high watermark, no group commits
# --------------------------------------------------------------------------------------------


def consumer_conf(bootstrap: str, isolation: str, **extra: object) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        # A unique group id: assign() needs one in librdkafka, but nothing is ever committed
        # and no group is joined (no subscribe()).
        "group.id": f"kbo-data-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation,
        "receive.message.max.bytes": RECEIVE_MAX,
        "fetch.max.bytes": RECEIVE_MAX - 1_000_000,
        "max.partition.fetch.bytes": 64 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
        "check.crcs": False,
        "fetch.wait.max.ms": 100,  # bounds the wait for PARTITION_EOF at a partition end
    }
    conf.update(extra)
    return conf


def consume_to_end(bootstrap: str, topics: list[str], isolation: str,
                   timeout: float = 300.0, batch: int = 10_000
                   ) -> tuple[dict[str, int], Iterator[list]]:
    """Read every partition of ``topics`` from its start to the high watermark taken at the
    beginning (for read_committed: the last stable offset). Returns the partition counts and a
    generator of message batches (error-free ``confluent_kafka.Message`` lists).

    A partition is done when a record at offset >= end-1 arrives or when librdkafka reports
    PARTITION_EOF (needed when the partition ends with control records or aborted data that
    read_committed skips). Records at or past the snapshot end are dropped."""
    consumer = Consumer(consumer_conf(bootstrap, isolation))
    parts = topic_partitions(consumer, topics)
    remaining: dict[tuple[str, int], int] = {}
    assignment = []
    for t in topics:
        for p in range(parts[t]):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10,
                                                    cached=False)
            if hi > lo:
                remaining[(t, p)] = hi
                assignment.append(TopicPartition(t, p, lo))

    def gen() -> Iterator[list]:
        try:
            if not assignment:
                return
            consumer.assign(assignment)
            deadline = time.monotonic() + timeout
            eof = KafkaError._PARTITION_EOF
            while remaining:
                msgs = consumer.consume(num_messages=batch, timeout=0.02)
                out = []
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == eof:
                            remaining.pop((m.topic(), m.partition()), None)
                            continue
                        raise KafkaException(err)
                    tp = (m.topic(), m.partition())
                    end = remaining.get(tp)
                    if end is None:
                        continue
                    off = m.offset()
                    if off >= end:
                        del remaining[tp]
                        continue
                    out.append(m)
                    if off >= end - 1:
                        del remaining[tp]
                if out:
                    yield out
                if time.monotonic() > deadline:
                    raise SystemExit(f"timeout after {timeout}s; unfinished partitions: "
                                     f"{sorted(remaining)[:10]}")
        finally:
            consumer.close()

    return parts, gen()


#: Internal record tuple: (topic, partition, offset, timestamp, ts_type, key, value, headers)
#: with key/value ``bytes | None`` and headers a tuple of ``(name, bytes | None)``.
Rec = tuple


def read_records(bootstrap: str, topics: list[str], isolation: str,
                 timeout: float = 300.0) -> tuple[dict[str, int], dict[tuple[str, int], list]]:
    """All records of ``topics`` grouped by (topic, partition), each list sorted by offset."""
    parts, batches = consume_to_end(bootstrap, topics, isolation, timeout)
    by_tp: dict[tuple[str, int], list] = {(t, p): [] for t in topics for p in range(parts[t])}
    for msgs in batches:
        for m in msgs:
            ts_type, ts = m.timestamp()
            h = m.headers()
            by_tp[(m.topic(), m.partition())].append(
                (m.topic(), m.partition(), m.offset(), ts, ts_type, m.key(), m.value(),
                 tuple(h) if h else ()))
    for recs in by_tp.values():
        recs.sort(key=lambda r: r[2])
    return parts, by_tp


def b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode("ascii")


def rec_to_json_obj(r: Rec) -> dict:
    return {
        "topic": r[0],
        "partition": r[1],
        "offset": r[2],
        "timestamp": r[3],
        "timestamp_type": TS_TYPE_NAMES.get(r[4], "NotAvailable"),
        "key": b64(r[5]),
        "value": b64(r[6]),
        "headers": [[n, b64(v)] for n, v in r[7]],
    }


def rec_to_json_line(r: Rec) -> str:
    return json.dumps(rec_to_json_obj(r), ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# produce-sample
# --------------------------------------------------------------------------------------------


@dataclass
class SampleRec:
    partition: int
    key: bytes | None
    value: bytes | None
    ts: int | None = None          # None -> producer's current time (not deterministic)
    headers: list | None = None


@dataclass
class Produced:
    """What a feature producer wrote: visible (committed / non-transactional) and aborted."""
    visible: int = 0
    aborted: int = 0
    notes: list[str] = field(default_factory=list)


class DeliveryTracker:
    """on_delivery callback collecting failures; checked after every flush."""

    def __init__(self) -> None:
        self.ok = 0
        self.errors: list[str] = []

    def __call__(self, err: KafkaError | None, msg) -> None:
        if err is None:
            self.ok += 1
        else:
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def check(self, what: str) -> None:
        if self.errors:
            raise SystemExit(f"{what}: {len(self.errors)} delivery errors, first: "
                             f"{self.errors[0]}")


def new_producer(bootstrap: str, **conf: object) -> Producer:
    c = {"bootstrap.servers": bootstrap, "linger.ms": 20}
    c.update(conf)
    return Producer(c)


def send(p: Producer, tracker: DeliveryTracker, topic: str, recs: Iterable[SampleRec]) -> int:
    n = 0
    for r in recs:
        kw = {}
        if r.ts is not None:
            kw["timestamp"] = r.ts
        if r.headers is not None:
            kw["headers"] = r.headers
        while True:
            try:
                p.produce(topic, value=r.value, key=r.key, partition=r.partition,
                          on_delivery=tracker, **kw)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
    return n


def flush(p: Producer, tracker: DeliveryTracker, what: str) -> None:
    left = p.flush(60)
    if left:
        raise SystemExit(f"{what}: {left} messages not delivered after 60 s")
    tracker.check(what)


def ts_of(seq: int) -> int:
    return NEW_BASE_MS + seq * STEP_MS


def plain_records() -> list[list[SampleRec]]:
    """The curated ``plain`` data, as groups; each group is produced by its own producer and
    flushed at once (so a group that lands on one partition forms one record batch)."""
    basics = [  # partition 0: keys and values
        SampleRec(0, b"k-basic-0", b"hello", ts_of(0)),
        SampleRec(0, None, b"null key", ts_of(1)),
        SampleRec(0, b"k-tombstone", None, ts_of(2)),          # tombstone
        SampleRec(0, b"", b"", ts_of(3)),                      # empty key and value
        SampleRec(0, b"", None, ts_of(4)),                     # empty key, null value
        SampleRec(0, None, b"", ts_of(5)),                     # null key, empty value
        SampleRec(0, None, None, ts_of(6)),                    # null key, null value
        SampleRec(0, bytes(range(256)), bytes(range(255, -1, -1)), ts_of(7)),  # binary
        SampleRec(0, "ключ-ü-🔑".encode(), "wert-ä-значение".encode(), ts_of(8)),
        SampleRec(0, b"k-basic-0", b"same key again", ts_of(9)),
        SampleRec(0, b"k-now-1", b"producer-time timestamp", None),  # non-deterministic ts
        SampleRec(0, b"k-now-2", b"producer-time timestamp", None),
    ]
    headers = [  # partition 1: headers
        SampleRec(1, b"h-bin", b"binary header value", ts_of(10),
                  [("bin", bytes(range(256)))]),
        SampleRec(1, b"h-dup", b"duplicate header names, order matters", ts_of(11),
                  [("dup", b"1"), ("dup", b"2"), ("other", b"x"), ("dup", b"3")]),
        SampleRec(1, b"h-null", b"header with null value", ts_of(12), [("nullhdr", None)]),
        SampleRec(1, b"h-empty-vs-null", b"empty vs null header values", ts_of(13),
                  [("empty", b""), ("null", None), ("empty", b"")]),
        SampleRec(1, b"h-unicode", b"unicode header name", ts_of(14),
                  [("ünï-ключ-🔑", "värde".encode())]),
        SampleRec(1, b"h-many", b"40 headers", ts_of(15),
                  [(f"h{i:02d}", str(i).encode()) for i in range(40)]),
        SampleRec(1, b"h-big", b"10 KiB header value", ts_of(16),
                  [("big", bytes(random.Random(16).randbytes(10 * 1024)))]),
        SampleRec(1, None, None, ts_of(17), [("on-tombstone", b"yes")]),
        SampleRec(1, b"h-none-list", b"no headers at all", ts_of(18)),
        SampleRec(1, b"h-empty-name", b"header with empty name", ts_of(19), [("", b"v")]),
    ]
    # partition 2: timestamps. One group -> one batch whose records span 23 years and in
    # which consecutive deltas exceed 2^31 ms (~24.8 days); also out of order and duplicated.
    old = [
        SampleRec(2, b"t-new-a", b"new timestamp first in batch", ts_of(20)),
        SampleRec(2, b"t-old-0", b"2001-01-01", OLD_BASE_MS),
        SampleRec(2, b"t-old-1", b"+10 days", OLD_BASE_MS + 10 * DAY_MS),
        SampleRec(2, b"t-old-2", b"+40 days (delta 30 d > 2^31 ms)", OLD_BASE_MS + 40 * DAY_MS),
        SampleRec(2, b"t-old-3", b"+100 days", OLD_BASE_MS + 100 * DAY_MS),
        SampleRec(2, b"t-old-3b", b"same ts as previous", OLD_BASE_MS + 100 * DAY_MS),
        SampleRec(2, b"t-old-4", b"back to +5 days (out of order)", OLD_BASE_MS + 5 * DAY_MS),
        SampleRec(2, b"t-old-5", b"2001-01-01 +1 ms", OLD_BASE_MS + 1),
        SampleRec(2, b"t-new-b", b"new timestamp last in batch", ts_of(21)),
    ]
    later = [  # a second batch on partition 2, after the first
        SampleRec(2, b"t-new-c", b"second batch", ts_of(22)),
        SampleRec(2, b"t-old-6", b"2001-03-01 in second batch", OLD_BASE_MS + 59 * DAY_MS),
        SampleRec(2, b"t-now", b"producer-time timestamp", None),
    ]
    return [basics, headers, old, later]


def feature_records(kind: str, n: int, partitions: int) -> list[SampleRec]:
    """Deterministic records for codec/idempotence topics: keyed (partition = crc32(key) % P),
    every 10th with a null key (round robin), every 3rd with a header; ts = ts_of(i)."""
    out = []
    for i in range(n):
        key = None if i % 10 == 9 else f"key-{i % 37}".encode()
        part = (zlib.crc32(key) if key is not None else i) % partitions
        value = (f"{kind} record {i} " + "lorem ipsum dolor sit amet " * (i % 20)).encode()
        hdrs = [("seq", str(i).encode()), ("kind", kind.encode())] if i % 3 == 0 else None
        out.append(SampleRec(part, key, value, ts_of(i), hdrs))
    return out


def produce_plain(bootstrap: str, topic: str) -> Produced:
    res = Produced()
    groups = plain_records()
    names = ["basics", "headers", "timestamps-batch1", "timestamps-batch2"]
    for name, group in zip(names, groups):
        tr = DeliveryTracker()
        # linger long enough that the whole group is one batch per partition
        p = new_producer(bootstrap, **{"linger.ms": 500, "batch.num.messages": 10_000,
                                       "message.max.bytes": 2_000_000,
                                       "client.id": f"kbo-sample-plain-{name}"})
        res.visible += send(p, tr, topic, group)
        flush(p, tr, f"{topic} {name}")
    return res


def produce_codec(bootstrap: str, topic: str, codec: str, n: int, partitions: int) -> Produced:
    tr = DeliveryTracker()
    p = new_producer(bootstrap, **{"compression.type": codec, "linger.ms": 200,
                                   "batch.num.messages": 10_000, "batch.size": 1_000_000,
                                   "client.id": f"kbo-sample-{codec}"})
    cnt = send(p, tr, topic, feature_records(codec, n, partitions))
    flush(p, tr, topic)
    return Produced(visible=cnt)


def produce_idem(bootstrap: str, topic: str, n: int, partitions: int) -> Produced:
    tr = DeliveryTracker()
    p = new_producer(bootstrap, **{"enable.idempotence": True, "acks": "all",
                                   "max.in.flight.requests.per.connection": 5,
                                   "linger.ms": 50, "client.id": "kbo-sample-idem"})
    cnt = send(p, tr, topic, feature_records("idem", n, partitions))
    flush(p, tr, topic)
    return Produced(visible=cnt)


def produce_txn(bootstrap: str, topic: str, n: int, partitions: int, prefix: str) -> Produced:
    """Two transactional producers A and B plus a plain idempotent producer C, interleaved in
    the log:  A:T1 commit | A:T2 abort | A:T3 and B:T1 open together, C writes between them,
    B:T1 aborts, A:T3 commits | A:T4 commit | A:T5 abort | A:T6 commit.
    Each transaction writes ``max(3, n // 10)`` records spread over all partitions. Record
    values say 'committed' / 'aborted' / 'non-transactional'."""
    res = Produced()
    per_txn = max(3, n // 10)
    seq = 0
    tr = DeliveryTracker()

    def txn_producer(tag: str) -> Producer:
        p = new_producer(bootstrap, **{"transactional.id": f"{prefix}txn-{tag}",
                                       "linger.ms": 20, "client.id": f"kbo-sample-txn-{tag}"})
        p.init_transactions(30)
        return p

    def recs(tag: str, outcome: str, count: int) -> list[SampleRec]:
        nonlocal seq
        out = []
        for _ in range(count):
            key = f"{tag}-{seq}".encode()
            out.append(SampleRec(seq % partitions, key, f"{tag} {outcome} seq={seq}".encode(),
                                 ts_of(seq), [("txn", f"{tag}:{outcome}".encode())]))
            seq += 1
        return out

    a, b = txn_producer("A"), txn_producer("B")
    c = new_producer(bootstrap, **{"enable.idempotence": True, "client.id": "kbo-sample-txn-C"})

    def txn(p: Producer, tag: str, commit: bool) -> None:
        p.begin_transaction()
        send(p, tr, topic, recs(tag, "committed" if commit else "aborted", per_txn))
        p.flush(30)  # records are in the log before the outcome is decided
        p.commit_transaction(30) if commit else p.abort_transaction(30)
        if commit:
            res.visible += per_txn
        else:
            res.aborted += per_txn

    txn(a, "A", True)
    txn(a, "A", False)
    # interleaved: two open transactions and non-transactional records between them
    a.begin_transaction()
    b.begin_transaction()
    for _ in range(2):
        send(a, tr, topic, recs("A", "committed", per_txn // 2 or 1))
        a.flush(30)
        send(b, tr, topic, recs("B", "aborted", per_txn // 2 or 1))
        b.flush(30)
        send(c, tr, topic, recs("C", "non-transactional", 2))
        c.flush(30)
    b.abort_transaction(30)
    a.commit_transaction(30)
    res.visible += 2 * (per_txn // 2 or 1) + 4
    res.aborted += 2 * (per_txn // 2 or 1)
    txn(a, "A", True)
    txn(a, "A", False)
    txn(a, "A", True)
    tr.check(topic)
    res.notes.append(f"{res.visible} visible with read_committed, {res.aborted} aborted "
                     "(visible with read_uncommitted); offsets have gaps for control records")
    return res


def produce_large(bootstrap: str, topic: str, partitions: int) -> Produced:
    tr = DeliveryTracker()
    p = new_producer(bootstrap, **{"message.max.bytes": 2_000_000, "linger.ms": 50,
                                   "client.id": "kbo-sample-large"})
    big = random.Random(5).randbytes(LARGE_RECORD_BYTES)
    recs = []
    for i in range(10):
        if i == 5:
            recs.append(SampleRec(0, b"large", big, ts_of(i), [("size", str(len(big)).encode())]))
        else:
            recs.append(SampleRec(i % partitions, f"small-{i}".encode(), f"small {i}".encode(),
                                  ts_of(i)))
    cnt = send(p, tr, topic, recs)
    flush(p, tr, topic)
    return Produced(visible=cnt, notes=[f"record at ts {ts_of(5)} on partition 0 is "
                                        f"{LARGE_RECORD_BYTES} bytes"])


def cmd_produce_sample(args: argparse.Namespace) -> int:
    P, parts, n = args.prefix, args.partitions, args.records
    if parts < 3:
        raise SystemExit("--partitions must be >= 3 (plain uses partitions 0..2)")
    base_cfg = {"retention.ms": "-1", "cleanup.policy": "delete"}
    specs = {f"{P}{f}": (parts, dict(base_cfg)) for f in SAMPLE_FEATURES}
    specs[f"{P}large"][1]["max.message.bytes"] = "2000000"
    create_topics(args.bootstrap, specs)
    log(f"created {len(specs)} topics with prefix {P!r}")

    produced: dict[str, Produced] = {}
    t0 = time.monotonic()
    produced[f"{P}plain"] = produce_plain(args.bootstrap, f"{P}plain")
    for codec in CODECS:
        produced[f"{P}{codec}"] = produce_codec(args.bootstrap, f"{P}{codec}", codec, n, parts)
    produced[f"{P}idem"] = produce_idem(args.bootstrap, f"{P}idem", n, parts)
    produced[f"{P}txn"] = produce_txn(args.bootstrap, f"{P}txn", n, parts, P)
    produced[f"{P}large"] = produce_large(args.bootstrap, f"{P}large", parts)
    log(f"produced in {time.monotonic() - t0:.1f}s; reading back")

    topics = list(specs)
    _, committed = read_records(args.bootstrap, topics, "read_committed")
    _, uncommitted = read_records(args.bootstrap, topics, "read_uncommitted")

    summary_topics = {}
    all_ts: set[int] = set()
    ok = True
    for t in topics:
        recs = [r for p in range(parts) for r in committed[(t, p)]]
        unc = sum(len(uncommitted[(t, p)]) for p in range(parts))
        ts = [r[3] for r in recs]
        all_ts.update(ts)
        pr = produced[t]
        entry = {
            "partitions": parts,
            "configs": specs[t][1],
            "records": len(recs),
            "records_read_uncommitted": unc,
            "records_per_partition": [len(committed[(t, p)]) for p in range(parts)],
            "expected_visible": pr.visible,
            "expected_aborted": pr.aborted,
            "min_timestamp": min(ts) if ts else None,
            "max_timestamp": max(ts) if ts else None,
            "min_timestamp_iso": iso(min(ts)) if ts else None,
            "max_timestamp_iso": iso(max(ts)) if ts else None,
        }
        if pr.notes:
            entry["notes"] = pr.notes
        if len(recs) != pr.visible or unc != pr.visible + pr.aborted:
            ok = False
            entry["MISMATCH"] = "read-back counts differ from what was produced"
        summary_topics[t] = entry

    def window(name: str, start: int, end: int, what: str) -> dict:
        for b in (start, end):
            if b not in all_ts:
                log(f"WARNING: PITR bound {b} of {name} is not a record timestamp")
        expected = {t: sum(1 for p in range(parts) for r in committed[(t, p)]
                           if start <= r[3] <= end) for t in topics}
        return {"name": name, "description": what, "start_ms": start, "end_ms": end,
                "start_iso": iso(start), "end_iso": iso(end), "expected_records": expected}

    q1, q3, mid = n // 4, (3 * n) // 4, n // 2
    suggestions = [
        window("middle-half", ts_of(q1), ts_of(q3),
               f"seq {q1}..{q3} of every codec/idem topic; bounds are record timestamps in "
               "gzip/snappy/lz4/zstd/idem (inclusive on both ends)"),
        window("single-ms", ts_of(mid), ts_of(mid),
               "start == end: exactly the records stamped with that millisecond"),
        window("old-2001", OLD_BASE_MS, OLD_BASE_MS + 100 * DAY_MS,
               "only the 2001 records of plain partition 2 (first and last old timestamps)"),
        window("head", ts_of(0), ts_of(9),
               "first ten seconds of the scheme: plain basics, large topic, first records of "
               "every other topic"),
    ]
    summary = {
        "prefix": P,
        "bootstrap": args.bootstrap,
        "ok": ok,
        "timestamp_scheme": {
            "new_base_ms": NEW_BASE_MS, "step_ms": STEP_MS,
            "rule": "record seq i of a topic has timestamp new_base_ms + i*step_ms, except "
                    "plain partition 2 (2001 timestamps from old_base_ms) and 3 plain "
                    "records stamped by the producer (current time)",
            "old_base_ms": OLD_BASE_MS,
        },
        "topics": summary_topics,
        "pitr_suggestions": suggestions,
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
# dump
# --------------------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    topics = sorted(split_csv(args.topics))
    t0 = time.monotonic()
    parts, by_tp = read_records(args.bootstrap, topics, args.isolation, args.timeout)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    n = 0
    try:
        lines = []
        for t in topics:
            for p in range(parts[t]):
                for r in by_tp[(t, p)]:
                    lines.append(rec_to_json_line(r))
                    n += 1
                if len(lines) > 10_000:
                    out.write("\n".join(lines) + "\n")
                    lines = []
        if lines:
            out.write("\n".join(lines) + "\n")
    finally:
        if args.out:
            out.close()
    log(f"dumped {n} records from {len(topics)} topics in {time.monotonic() - t0:.2f}s")
    return 0


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def parse_partition_map(s: str | None) -> dict[int, int]:
    m: dict[int, int] = {}
    for item in split_csv(s or ""):
        try:
            a, b = item.split(":")
            m[int(a)] = int(b)
        except ValueError:
            raise SystemExit(f"bad --partition-map entry {item!r} (want SRC:DST)") from None
    if len(set(m.values())) != len(m):
        raise SystemExit("--partition-map must not map two source partitions to one target")
    return m


def parse_offset_bounds(s: str | None) -> dict[tuple[str, int], tuple[int, int]]:
    """``TOPIC:P:START:END,...`` (source topic and partition; START inclusive, END exclusive,
    either may be empty for no bound) -> {(topic, p): (lo, hi)}."""
    m: dict[tuple[str, int], tuple[int, int]] = {}
    for item in split_csv(s or ""):
        try:
            t, p, a, b = item.split(":")
            m[(t, int(p))] = (int(a) if a else -(2 ** 63), int(b) if b else 2 ** 63)
        except ValueError:
            raise SystemExit(f"bad --offset-bounds entry {item!r} (want TOPIC:P:START:END)") from None
    return m


def fidelity_key(r: Rec) -> tuple:
    """What must survive backup/restore: timestamp, key, value, headers (in order)."""
    return (r[3], r[5], r[6], r[7])


def describe_diff(a: Rec | None, b: Rec | None) -> str:
    if a is None or b is None:
        return "missing record" if b is None else "extra record"
    fields = [name for name, i in (("timestamp", 3), ("key", 5), ("value", 6), ("headers", 7))
              if a[i] != b[i]]
    return "differs in " + ", ".join(fields)


def short_json(r: Rec | None, limit: int = 300) -> str:
    if r is None:
        return "<none>"
    o = rec_to_json_obj(r)
    for k in ("key", "value"):
        if o[k] is not None and len(o[k]) > limit:
            o[k] = o[k][:limit] + f"...({len(r[5 if k == 'key' else 6])} bytes)"
    o["headers"] = [[n, v if v is None or len(v) <= limit else v[:limit] + "..."]
                    for n, v in o["headers"]]
    return json.dumps(o, ensure_ascii=False)


def cmd_compare(args: argparse.Namespace) -> int:
    src_topics, dst_topics = split_csv(args.source_topics), split_csv(args.target_topics)
    if len(src_topics) != len(dst_topics):
        raise SystemExit("--source-topics and --target-topics need the same number of topics")
    pmap = parse_partition_map(args.partition_map)
    obounds = parse_offset_bounds(args.offset_bounds)
    lo = args.pitr_start if args.pitr_start is not None else -(2 ** 63)
    hi = args.pitr_end if args.pitr_end is not None else 2 ** 63
    in_window = (lambda ts: lo <= ts <= hi)

    s_parts, src = read_records(args.bootstrap, sorted(set(src_topics)), args.isolation,
                                args.timeout)
    d_parts, dst = read_records(args.bootstrap, sorted(set(dst_topics)),
                                args.target_isolation, args.timeout)

    rows, problems = [], []
    for s, d in zip(src_topics, dst_topics):
        n_src = n_dst = 0
        topic_ok = True
        used_targets = set()
        for p in range(s_parts[s]):
            tp = pmap.get(p, p)
            o_lo, o_hi = obounds.get((s, p), (-(2 ** 63), 2 ** 63))
            expected = [r for r in src[(s, p)] if in_window(r[3]) and o_lo <= r[2] < o_hi]
            n_src += len(expected)
            if tp >= d_parts[d]:
                topic_ok = False
                problems.append(f"{s}[{p}] -> {d}[{tp}]: target partition does not exist "
                                f"({d} has {d_parts[d]})")
                continue
            used_targets.add(tp)
            actual = dst[(d, tp)]
            n_dst += len(actual)
            ek = [fidelity_key(r) for r in expected]
            ak = [fidelity_key(r) for r in actual]
            if ek != ak:
                topic_ok = False
                i = next((i for i, (x, y) in enumerate(zip(ek, ak)) if x != y),
                         min(len(ek), len(ak)))
                a = expected[i] if i < len(expected) else None
                b = actual[i] if i < len(actual) else None
                problems.append(
                    f"{s}[{p}] -> {d}[{tp}]: {len(expected)} source records in window, "
                    f"{len(actual)} in target; first difference at index {i}: "
                    f"{describe_diff(a, b)}\n  source: {short_json(a)}\n  target: "
                    f"{short_json(b)}")
        for tp in range(d_parts[d]):
            if tp not in used_targets and dst[(d, tp)]:
                topic_ok = False
                n_dst += len(dst[(d, tp)])
                problems.append(f"{d}[{tp}]: {len(dst[(d, tp)])} records in a target partition "
                                f"no source partition maps to; first: "
                                f"{short_json(dst[(d, tp)][0])}")
        rows.append((s, d, n_src, n_dst, topic_ok))

    w1 = max([len("source topic")] + [len(r[0]) for r in rows])
    w2 = max([len("target topic")] + [len(r[1]) for r in rows])
    window_desc = (f"window [{args.pitr_start if args.pitr_start is not None else '-inf'}, "
                   f"{args.pitr_end if args.pitr_end is not None else '+inf'}] (inclusive)")
    print(f"# {window_desc}; source {args.isolation}, target {args.target_isolation}")
    print(f"{'source topic':<{w1}}  {'target topic':<{w2}}  {'src in window':>13}  "
          f"{'target':>8}  match")
    for s, d, a, b, ok in rows:
        print(f"{s:<{w1}}  {d:<{w2}}  {a:>13}  {b:>8}  {'yes' if ok else 'NO'}")
    for pr in problems:
        print("MISMATCH " + pr)
    all_ok = all(r[4] for r in rows)
    print("RESULT: " + ("all topics match" if all_ok else
                        f"{sum(not r[4] for r in rows)} of {len(rows)} topics differ"))
    return 0 if all_ok else 1


# --------------------------------------------------------------------------------------------
# bench-consume / bench-produce
# --------------------------------------------------------------------------------------------


def cmd_bench_consume(args: argparse.Namespace) -> int:
    topics = split_csv(args.topics)
    t0 = time.monotonic()
    parts, batches = consume_to_end(args.bootstrap, topics, args.isolation, args.timeout)
    tidx = {t: i for i, t in enumerate(topics)}
    records = payload = 0
    pack_rec, pack_name, pack_val = REC_HDR.pack, HDR_NAME.pack, HDR_VAL.pack
    with open(args.out, "wb") as f:
        head = bytearray(BENCH_MAGIC)
        head += struct.pack("<I", len(topics))
        for t in topics:
            name = t.encode()
            head += struct.pack("<H", len(name)) + name + struct.pack("<I", parts[t])
        f.write(head)
        buf = bytearray()
        for msgs in batches:
            for m in msgs:
                k, v, h = m.key(), m.value(), m.headers()
                kl = -1 if k is None else len(k)
                vl = -1 if v is None else len(v)
                buf += pack_rec(tidx[m.topic()], m.partition(), m.timestamp()[1], kl, vl,
                                len(h) if h else 0)
                if k:
                    buf += k
                    payload += kl
                if v:
                    buf += v
                    payload += vl
                if h:
                    for n, hv in h:
                        nb = n.encode()
                        buf += pack_name(len(nb))
                        buf += nb
                        if hv is None:
                            buf += pack_val(-1)
                        else:
                            buf += pack_val(len(hv))
                            buf += hv
                            payload += len(hv)
                        payload += len(nb)
            records += len(msgs)
            if len(buf) >= 8 << 20:
                f.write(buf)
                buf = bytearray()
        f.write(buf)
        file_bytes = f.tell()
    secs = time.monotonic() - t0
    print(json.dumps(bench_line(records, payload, secs, file_bytes=file_bytes)))
    return 0


def bench_line(records: int, nbytes: int, secs: float, **extra: object) -> dict:
    return {"records": records, "bytes": nbytes, "seconds": round(secs, 3),
            "mb_per_s": round(nbytes / 1e6 / secs, 2) if secs > 0 else None,
            "records_per_s": round(records / secs) if secs > 0 else None,
            "peak_rss_mb": peak_rss_mb(), **extra}


def read_bench_file(path: str, chunk: int = 16 << 20
                    ) -> tuple[list[tuple[str, int]], Iterator[tuple]]:
    """Parse a bench-consume file. Returns [(topic, partitions)] and a generator of
    (topic_idx, partition, ts, key, value, headers|None), key/value ``bytes | None``
    (not memoryviews: confluent-kafka's produce() rejects them)."""
    f = open(path, "rb")
    magic = f.read(len(BENCH_MAGIC))
    if magic != BENCH_MAGIC:
        raise SystemExit(f"{path}: not a kbo bench file")
    (nt,) = struct.unpack("<I", f.read(4))
    topics = []
    for _ in range(nt):
        (ln,) = struct.unpack("<H", f.read(2))
        name = f.read(ln).decode()
        (np,) = struct.unpack("<I", f.read(4))
        topics.append((name, np))

    class Incomplete(Exception):
        pass

    def gen() -> Iterator[tuple]:
        unpack_rec, hsz = REC_HDR.unpack_from, REC_HDR.size
        unpack_name, unpack_val = HDR_NAME.unpack_from, HDR_VAL.unpack_from
        buf, pos = b"", 0
        with f:
            while True:
                more = f.read(chunk)
                buf, pos = buf[pos:] + more, 0  # keep the unparsed tail of the last chunk
                if not buf:
                    return
                size = len(buf)
                while pos < size:
                    start = pos
                    try:
                        if pos + hsz > size:
                            raise Incomplete
                        ti, part, ts, kl, vl, nh = unpack_rec(buf, pos)
                        pos += hsz
                        if pos + max(kl, 0) + max(vl, 0) > size:
                            raise Incomplete
                        key = None if kl < 0 else buf[pos:pos + kl]
                        pos += max(kl, 0)
                        val = None if vl < 0 else buf[pos:pos + vl]
                        pos += max(vl, 0)
                        hdrs = None
                        if nh:
                            hdrs = []
                            for _ in range(nh):
                                if pos + 2 > size:
                                    raise Incomplete
                                (nl,) = unpack_name(buf, pos)
                                pos += 2
                                if pos + nl + 4 > size:
                                    raise Incomplete
                                hn = buf[pos:pos + nl].decode()
                                pos += nl
                                (hl,) = unpack_val(buf, pos)
                                pos += 4
                                if hl < 0:
                                    hdrs.append((hn, None))
                                else:
                                    if pos + hl > size:
                                        raise Incomplete
                                    hdrs.append((hn, buf[pos:pos + hl]))
                                    pos += hl
                    except Incomplete:
                        pos = start
                        if not more:
                            raise SystemExit(f"{path}: truncated record at end of file")
                        break
                    yield ti, part, ts, key, val, hdrs

    return topics, gen()


def fast_producer_conf(bootstrap: str, **extra: object) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 50,
        "batch.size": 1_000_000,
        "batch.num.messages": 1_000_000,
        "queue.buffering.max.kbytes": 2_097_151,
        "queue.buffering.max.messages": 2_000_000,
        "compression.type": "none",
        "message.max.bytes": 2_000_000,
        "delivery.report.only.error": True,
    }
    conf.update(extra)
    return conf


def cmd_bench_produce(args: argparse.Namespace) -> int:
    topics, records_iter = read_bench_file(args.infile)
    targets = [t + args.topic_suffix for t, _ in topics]
    # --partitions N: N partitions per target, placed by librdkafka's murmur2_random partitioner
    # (the partition of the file is ignored); else each record keeps its partition
    nparts = args.partitions
    create_topics(args.bootstrap, {tt: (nparts or np, {"retention.ms": "-1"})
                                   for tt, (_t, np) in zip(targets, topics)})
    extra: dict = {}
    if nparts:
        extra["partitioner"] = "murmur2_random"
    if args.batch_records:
        extra["batch.num.messages"] = args.batch_records
    lo = args.ts_start if args.ts_start is not None else -(2 ** 63)
    hi = args.ts_end if args.ts_end is not None else 2 ** 63
    tr = DeliveryTracker()
    p = Producer(fast_producer_conf(args.bootstrap, on_delivery=tr, **extra))
    produce, poll = p.produce, p.poll
    records = payload = 0
    t0 = time.monotonic()
    for ti, part, ts, key, val, hdrs in records_iter:
        if ts < lo or ts > hi:
            continue
        kw = {"headers": hdrs} if hdrs else {}
        if ts > 0:
            kw["timestamp"] = ts
        if not nparts:
            kw["partition"] = part
        while True:
            try:
                produce(targets[ti], val, key, **kw)
                break
            except BufferError:
                poll(0.05)
        records += 1
        payload += (len(key) if key is not None else 0) + (len(val) if val is not None else 0)
        if hdrs:
            payload += sum(len(n.encode()) + (len(v) if v is not None else 0) for n, v in hdrs)
        if records & 0x3FFF == 0:
            poll(0)
    left = p.flush(300)
    secs = time.monotonic() - t0
    if left:
        raise SystemExit(f"{left} messages not delivered")
    tr.check("bench-produce")
    print(json.dumps(bench_line(records, payload, secs, topics=targets)))
    return 0


# --------------------------------------------------------------------------------------------
# gen-load
# --------------------------------------------------------------------------------------------


def cmd_gen_load(args: argparse.Namespace) -> int:
    create_topics(args.bootstrap, {args.topic: (args.partitions, {"retention.ms": "-1"})})
    rb = args.record_bytes
    total = args.mib * 1024 * 1024
    n = total // rb
    # Cheap random-ish values: one os.urandom pool, cut at many offsets once up front and
    # reused round robin (produce() needs bytes, not memoryviews; it copies them anyway).
    pool = os.urandom(8 << 20)
    nvals = max(16, min(4096, (64 << 20) // rb))
    if rb <= len(pool):
        step = max(1, (len(pool) - rb) // nvals)
        values = [pool[o * step:o * step + rb] for o in range(nvals)]
    else:
        values = [os.urandom(rb) for _ in range(16)]
    nv = len(values)
    tr = DeliveryTracker()
    p = Producer(fast_producer_conf(args.bootstrap, on_delivery=tr))
    produce, poll, parts = p.produce, p.poll, args.partitions
    t0 = time.monotonic()
    for i in range(n):
        while True:
            try:
                produce(args.topic, values[i % nv], b"key-%d" % i, partition=i % parts)
                break
            except BufferError:
                poll(0.05)
        if i & 0x3FFF == 0:
            poll(0)
    left = p.flush(300)
    secs = time.monotonic() - t0
    if left:
        raise SystemExit(f"{left} messages not delivered")
    tr.check("gen-load")
    print(json.dumps(bench_line(n, n * rb, secs, topic=args.topic, partitions=parts)))
    return 0


# --------------------------------------------------------------------------------------------
# delete-topics
# --------------------------------------------------------------------------------------------


def cmd_list_topics(args: argparse.Namespace) -> int:
    """Topic names starting with PREFIX, one per line (the admin client's metadata)."""
    admin = admin_client(args.bootstrap)
    for t in sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(args.prefix)):
        print(t)
    return 0


def cmd_delete_topics(args: argparse.Namespace) -> int:
    if len(args.prefix) < 4 or args.prefix.startswith("_"):
        raise SystemExit("refusing: --prefix must have >= 4 characters and not start with '_'")
    admin = admin_client(args.bootstrap)
    names = sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(args.prefix))
    if not names:
        log("no topics match")
        return 0
    for name, fut in admin.delete_topics(names, operation_timeout=30).items():
        try:
            fut.result()
            print(f"deleted {name}")
        except KafkaException as e:
            print(f"FAILED {name}: {e}")
    return 0


# --------------------------------------------------------------------------------------------
# Consumer groups (real librdkafka group members: JoinGroup/SyncGroup/OffsetCommit)
# --------------------------------------------------------------------------------------------

def group_consumer(bootstrap: str, group: str, extra: dict | None = None) -> Consumer:
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
            "client.id": f"kbo-test-{group}", "isolation.level": "read_committed"}
    conf.update(extra or {})
    return Consumer(conf)


def cmd_group_commit(args: argparse.Namespace) -> int:
    """Join GROUP on TOPIC, read N records of every partition (fewer where the partition has
    fewer), commit "next record to read" with metadata, leave. Prints the commits as JSON."""
    c = group_consumer(args.bootstrap, args.group)
    c.subscribe([args.topic])
    want, seen, last = args.per_partition, {}, {}
    deadline = time.time() + args.timeout
    parts = None
    while time.time() < deadline:
        if parts is None:
            md = c.list_topics(args.topic, timeout=10).topics.get(args.topic)
            parts = sorted(md.partitions) if md and md.partitions else None
        m = c.poll(0.2)
        if m is None or m.error():
            if parts and all(seen.get(p, 0) >= want for p in parts):
                break
            continue
        p = m.partition()
        if seen.get(p, 0) < want:
            seen[p] = seen.get(p, 0) + 1
            last[p] = m.offset()
        if parts and all(seen.get(p, 0) >= want for p in parts):
            break
    offsets = [TopicPartition(args.topic, p, o + 1, f"meta-{args.group}-{p}") for p, o in sorted(last.items())]
    if offsets:
        c.commit(offsets=offsets, asynchronous=False)
    c.close()
    print(json.dumps({str(t.partition): t.offset for t in offsets}))
    return 0


def cmd_group_next(args: argparse.Namespace) -> int:
    """Join GROUP on TOPICS and report, for every partition, the first record the group is
    given (offset, key, value digest) without committing, then leave. Partitions with nothing
    to read within --timeout are reported as null. Also prints the committed offsets and their
    metadata before reading. JSON: {"first": {topic: {partition: {...}|null}}, "committed":
    {topic: {partition: [offset, metadata]}}}."""
    topics = split_csv(args.topics)
    c = group_consumer(args.bootstrap, args.group)
    md = c.list_topics(timeout=10).topics
    all_parts = [TopicPartition(t, p) for t in topics for p in sorted(md[t].partitions)]
    committed = {}
    for tp in c.committed(all_parts, timeout=10):
        committed.setdefault(tp.topic, {})[str(tp.partition)] = [tp.offset, tp.metadata]
    c.subscribe(topics)
    first: dict = {t: {str(p.partition): None for p in all_parts if p.topic == t} for t in topics}
    deadline = time.time() + args.timeout
    while time.time() < deadline and any(v is None for t in first.values() for v in t.values()):
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        slot = first[m.topic()]
        if slot.get(str(m.partition())) is None:
            slot[str(m.partition())] = {"offset": m.offset(),
                                        "key": base64.b64encode(m.key()).decode() if m.key() is not None else None}
    c.close()
    print(json.dumps({"first": first, "committed": committed}))
    return 0


def cmd_group_committed(args: argparse.Namespace) -> int:
    """The committed offsets of GROUP on TOPICS (OffsetFetch; the group is not joined). JSON:
    {topic: {partition: offset}}; partitions without a commit are left out."""
    topics = split_csv(args.topics)
    c = group_consumer(args.bootstrap, args.group)
    md = c.list_topics(timeout=10).topics
    parts = [TopicPartition(t, p) for t in topics if t in md for p in sorted(md[t].partitions)]
    out: dict = {t: {} for t in topics}
    for tp in (c.committed(parts, timeout=10) if parts else []):
        if tp.offset >= 0:
            out[tp.topic][str(tp.partition)] = tp.offset
    c.close()
    print(json.dumps(out))
    return 0


def cmd_murmur2_partitions(args: argparse.Namespace) -> int:
    """Which partition librdkafka's murmur2 partitioner (the Java default partitioner's hash)
    picks for every distinct key of TOPIC among N partitions: the keys are produced to a new
    SCRATCH topic of N partitions with partitioner=murmur2_random and the delivery reports
    say where each landed. JSON: {base64 key: partition}. Keyless records are left out."""
    parts, by_tp = read_records(args.bootstrap, [args.keys_from], "read_committed", 30.0)
    keys = sorted({r[5] for recs in by_tp.values() for r in recs if r[5] is not None})
    create_topics(args.bootstrap, {args.scratch: (args.partitions, {})})
    where: dict = {}

    def report(err, msg):
        if err is not None:
            raise SystemExit(f"murmur2-partitions: delivery failed: {err}")
        where[b64(msg.key())] = msg.partition()

    p = Producer({"bootstrap.servers": args.bootstrap, "partitioner": "murmur2_random",
                  "linger.ms": 5, "enable.idempotence": False})
    for k in keys:
        p.produce(args.scratch, b"", k, on_delivery=report)
        p.poll(0)
    if p.flush(60):
        raise SystemExit("murmur2-partitions: not all keys delivered")
    print(json.dumps(where))
    return 0


def cmd_group_hold(args: argparse.Namespace) -> int:
    """Join GROUP on TOPIC and stay a member for --secs seconds (polling, committing
    nothing); prints JOINED once it has an assignment."""
    c = group_consumer(args.bootstrap, args.group)
    c.subscribe([args.topic])
    deadline, joined = time.time() + args.secs, False
    while time.time() < deadline:
        c.poll(0.2)
        if not joined and c.assignment():
            print("JOINED", flush=True)
            joined = True
    c.close()
    return 0


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

COMPARE_HELP = """\
Dump source and target topics and check, per source partition mapped to its target
partition, that the target holds exactly the source records whose timestamp lies in the
inclusive window [--pitr-start, --pitr-end] (all records if neither is given), in the same
order, with identical key, value, headers (order, duplicates, null values) and timestamp.
Offsets may differ. Target partitions that no source partition maps to must be empty.

Isolation: the source is read read_committed by default, because aborted transactional
records are not expected to be restored (a backup should not carry them). The target is read
read_committed too by default; use --target-isolation read_uncommitted to also catch records a
restore wrote inside transactions it later aborted.

Prints a table (source records in window, target records, match) and, for each mismatching
partition, the first differing record of each side. Exit code 0 if all match, 1 otherwise.
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kbo_data.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    env_bs = os.environ.get("KBO_KAFKA_BOOTSTRAP")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap", default=env_bs, required=env_bs is None,
                       help="bootstrap servers (default: $KBO_KAFKA_BOOTSTRAP)")

    def timeout(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=float, default=300.0,
                       help="give up reading after this many seconds (default 300)")

    iso_choices = ("read_committed", "read_uncommitted")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("produce-sample", help="create and fill the fidelity sample topics",
                       description=produce_sample_help(), formatter_class=fmt)
    common(p)
    p.add_argument("--prefix", required=True, help="topic name prefix, e.g. pytool-ab12-")
    p.add_argument("--partitions", type=int, default=3, help="partitions per topic (>= 3)")
    p.add_argument("--records", type=int, default=1000,
                   help="records per codec/idem topic; txn uses max(3, N/10) per transaction")
    p.set_defaults(func=cmd_produce_sample)

    p = sub.add_parser("dump", help="canonical JSON lines of topics, start to high watermark",
                       description="Read every partition from its start to the high watermark "
                       "taken when the command starts (read_committed: the last stable offset) "
                       "and write one JSON object per record: {topic, partition, offset, "
                       "timestamp, timestamp_type, key, value, headers}; key/value/header "
                       "values are base64 or null, headers are [[name, value], ...] in order. "
                       "Sorted by topic, partition, offset. No consumer group is joined or "
                       "committed.")
    common(p)
    p.add_argument("--topics", required=True, help="comma-separated topic names")
    p.add_argument("--isolation", choices=iso_choices, default="read_committed")
    p.add_argument("--out", help="output file (default stdout)")
    timeout(p)
    p.set_defaults(func=cmd_dump)

    p = sub.add_parser("compare", help="check a restore against its source",
                       description=COMPARE_HELP, formatter_class=fmt)
    common(p)
    p.add_argument("--source-topics", required=True, help="comma-separated")
    p.add_argument("--target-topics", required=True,
                   help="comma-separated, paired with --source-topics by position")
    p.add_argument("--pitr-start", type=int, help="window start, ms since epoch, inclusive")
    p.add_argument("--pitr-end", type=int, help="window end, ms since epoch, inclusive")
    p.add_argument("--offset-bounds", help="TOPIC:P:START:END,... source offsets expected "
                   "restored per source partition (START inclusive, END exclusive, either "
                   "empty for no bound; both bounds and the window must hold)")
    p.add_argument("--partition-map", help="SRC:DST,... for every topic pair "
                   "(unlisted partitions map to themselves)")
    p.add_argument("--isolation", choices=iso_choices, default="read_committed",
                   help="isolation for reading the SOURCE (default read_committed)")
    p.add_argument("--target-isolation", choices=iso_choices, default="read_committed",
                   help="isolation for reading the TARGET (default read_committed)")
    timeout(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench-consume", help="baseline consumer: topics -> binary file",
                       description="Plain confluent-kafka consumer: read topics from start "
                       "to high watermark into a length-prefixed binary file. Prints one JSON "
                       "line {records, bytes, seconds, mb_per_s, records_per_s, peak_rss_mb, "
                       "file_bytes}; bytes = key + value + header name/value bytes.")
    common(p)
    p.add_argument("--topics", required=True, help="comma-separated topic names")
    p.add_argument("--out", required=True)
    p.add_argument("--isolation", choices=iso_choices, default="read_committed")
    timeout(p)
    p.set_defaults(func=cmd_bench_consume)

    p = sub.add_parser("bench-produce", help="baseline producer: binary file -> new topics",
                       description="Plain confluent-kafka producer (acks=all, linger.ms=50, "
                       "batch.size=1000000, no compression): write a bench-consume file to "
                       "topics named <original><suffix>, created with the same partition count "
                       "and retention.ms=-1, keeping partition, timestamp, key, value, headers. "
                       "Prints one JSON line like bench-consume.")
    common(p)
    p.add_argument("--in", dest="infile", required=True)
    p.add_argument("--topic-suffix", required=True,
                   help="appended to each topic name; write --topic-suffix=-x for a leading '-'")
    p.add_argument("--ts-start", type=int,
                   help="write only records with timestamp >= this (ms, a PITR window's start)")
    p.add_argument("--ts-end", type=int,
                   help="write only records with timestamp <= this (ms, a PITR window's end)")
    p.add_argument("--partitions", type=int, default=0,
                   help="create the targets with N partitions and let librdkafka's "
                   "murmur2_random partitioner place each record (a repartitioned restore's "
                   "baseline); default: same partition count, same partition")
    p.add_argument("--batch-records", type=int, default=0,
                   help="librdkafka batch.num.messages (default 1000000)")
    p.set_defaults(func=cmd_bench_produce)

    p = sub.add_parser("gen-load", help="fill a new topic with N MiB of records, fast",
                       description="Create TOPIC (retention.ms=-1) and produce MIB MiB of "
                       "values of RECORD_BYTES random bytes each (key 'key-<i>', partition "
                       "i %% PARTITIONS). Prints one JSON line like bench-consume.")
    common(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--record-bytes", type=int, default=1024)
    p.set_defaults(func=cmd_gen_load)

    p = sub.add_parser("group-commit", help="a real group member reads N records per partition and commits")
    common(p)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--per-partition", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_group_commit)

    p = sub.add_parser("group-next", help="the first record a group is given on every partition")
    common(p)
    p.add_argument("--group", required=True)
    p.add_argument("--topics", required=True, help="comma-separated")
    p.add_argument("--timeout", type=float, default=20)
    p.set_defaults(func=cmd_group_next)

    p = sub.add_parser("group-committed", help="a group's committed offsets, without joining it")
    common(p)
    p.add_argument("--group", required=True)
    p.add_argument("--topics", required=True, help="comma-separated")
    p.set_defaults(func=cmd_group_committed)

    p = sub.add_parser("group-hold", help="stay a member of a group for a while")
    common(p)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--secs", type=float, default=30)
    p.set_defaults(func=cmd_group_hold)

    p = sub.add_parser("murmur2-partitions",
                       help="the partition librdkafka's murmur2 partitioner picks for each key")
    common(p)
    p.add_argument("--keys-from", required=True, help="topic whose distinct keys are placed")
    p.add_argument("--scratch", required=True, help="new topic to produce the keys to")
    p.add_argument("--partitions", type=int, required=True)
    p.set_defaults(func=cmd_murmur2_partitions)

    p = sub.add_parser("list-topics", help="topic names starting with a prefix")
    common(p)
    p.add_argument("--prefix", required=True)
    p.set_defaults(func=cmd_list_topics)

    p = sub.add_parser("delete-topics", help="delete all topics starting with a prefix")
    common(p)
    p.add_argument("--prefix", required=True)
    p.set_defaults(func=cmd_delete_topics)
    return ap


def produce_sample_help() -> str:
    return f"""\
Create topics {{P}}{{{','.join(SAMPLE_FEATURES)}}} (retention.ms=-1, cleanup.policy=delete;
{{P}}large also max.message.bytes=2000000) and fill them, one producer per feature:

  plain   curated records on explicit partitions. p0: null/empty (b"") keys and values in
          every combination, tombstones, binary and UTF-8 keys, 2 producer-time timestamps.
          p1: headers - binary values, duplicate names (order kept), null values, empty vs
          null, unicode and empty names, 40 headers, a 10 KiB value, headers on a tombstone.
          p2: one batch mixing 2024 and 2001 timestamps with deltas > 2^31 ms (> 24.8 days),
          out of order and duplicated; then a second batch.
  gzip/snappy/lz4/zstd   N records each with that compression.type, linger so batches hold
          many records.
  idem    N records from an idempotent producer.
  txn     two transactional producers and a non-transactional one, interleaved; committed
          and aborted transactions (see summary: records vs records_read_uncommitted).
  large   10 records, one of them {LARGE_RECORD_BYTES} bytes.

Timestamps: record seq i of a topic gets {NEW_BASE_MS} + i*{STEP_MS} ms (2024-01-01T00:00:00Z +
i s), so PITR bounds from this scheme hit records in every topic. Prints a JSON summary with
per-topic counts, min/max timestamps and "pitr_suggestions" [{{name, start_ms, end_ms,
expected_records: {{topic: n}}}}]. Exit 1 if read-back counts differ from what was produced.
"""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
