//! One broker connection: TCP (+TLS), ApiVersions negotiation, SASL, and pipelined requests.
//!
//! Requests are written by a writer task and answered by a reader task that matches
//! responses to callers by correlation id, so many requests can be in flight on one
//! connection (Kafka answers in order per connection; see the protocol guide, "Network").
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::config::ClientConfig;
use super::error::{KafkaError, Result};

/// Any byte stream a connection can run on (plain TCP or TLS).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Who waits for a response: a caller wanting the whole frame, or a streaming caller that
/// receives the frame in chunks (see [`Connection::enqueue_streaming`]).
enum Waiter {
    Whole(oneshot::Sender<Result<Bytes>>),
    Stream(mpsc::Sender<Result<Bytes>>),
}

type Pending = Arc<Mutex<HashMap<i32, Waiter>>>;

/// Chunk size of streamed responses (256 KiB).
const STREAM_CHUNK: usize = 256 << 10;

struct Outgoing {
    frame: BytesMut,
    correlation_id: i32,
    reply: Option<Waiter>,
}

/// Largest answer read whole into memory (1 GiB). Streamed answers (Fetch, see
/// [`Connection::enqueue_streaming`]) are not held whole and may use the protocol's whole
/// int32 size field (2 GiB - 1 bytes; protocol guide, "Network": `Size => int32`): noida-db
/// ignores Fetch's `max_bytes` and answers one Fetch with a whole partition.
const MAX_WHOLE_FRAME: usize = 1 << 30;

/// A live connection to one broker.
pub struct Connection {
    broker: String,
    tx: mpsc::Sender<Outgoing>,
    closed: Arc<AtomicBool>,
    next_id: AtomicI32,
    client_id: StrBytes,
    request_timeout: Duration,
    /// Broker's supported (min, max) version per API key, from ApiVersions.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `broker` (`host:port`), applies TCP options, TLS and SASL from `cfg`, and
    /// negotiates API versions.
    ///
    /// Errors: [`KafkaError::Connect`] (refused, unresolvable, timeout), [`KafkaError::Tls`],
    /// [`KafkaError::Sasl`], [`KafkaError::Protocol`].
    pub async fn connect(broker: &str, cfg: &ClientConfig) -> Result<Connection> {
        let connect_err = |reason: String| KafkaError::Connect {
            broker: broker.to_string(),
            reason,
        };
        let tcp = tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(broker))
            .await
            .map_err(|_| {
                connect_err(format!(
                    "timed out after {} ms",
                    cfg.connect_timeout.as_millis()
                ))
            })?
            .map_err(|e| connect_err(e.to_string()))?;
        tcp.set_nodelay(cfg.nodelay)
            .map_err(|e| connect_err(e.to_string()))?;
        if let Some((idle, interval)) = cfg.keepalive {
            let ka = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(interval);
            socket2::SockRef::from(&tcp)
                .set_tcp_keepalive(&ka)
                .map_err(|e| connect_err(e.to_string()))?;
        }
        let stream: Box<dyn Stream> = match &cfg.tls {
            Some(tls) => Box::new(super::tls::wrap(tcp, broker, tls).await?),
            None => Box::new(tcp),
        };
        let mut conn = Connection::start(broker, stream, cfg);
        conn.negotiate_versions().await?;
        if let Some(sasl) = &cfg.sasl {
            super::sasl::authenticate(&conn, sasl).await?;
        }
        Ok(conn)
    }

    fn start(broker: &str, stream: Box<dyn Stream>, cfg: &ClientConfig) -> Connection {
        let (read, write) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel::<Outgoing>(64);
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(writer(
            write,
            rx,
            pending.clone(),
            closed.clone(),
            broker.to_string(),
        ));
        tokio::spawn(reader(
            read,
            pending,
            closed.clone(),
            broker.to_string(),
            MAX_WHOLE_FRAME,
        ));
        Connection {
            broker: broker.to_string(),
            tx,
            closed,
            next_id: AtomicI32::new(1),
            client_id: StrBytes::from_string(cfg.client_id.clone()),
            request_timeout: cfg.request_timeout,
            versions: HashMap::new(),
        }
    }

    /// `host:port` of the broker.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// False once the connection failed; the pool then replaces it.
    pub fn is_alive(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    async fn negotiate_versions(&mut self) -> Result<()> {
        // v3 first; a broker that does not know it answers UNSUPPORTED_VERSION (35) in the v0
        // layout, listing what it supports (KIP-511).
        let mut resp: ApiVersionsResponse = self
            .call_version(
                &ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("kafka-backup-operator"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    ))),
                3,
            )
            .await
            .or_else(|e| match e {
                KafkaError::Protocol { .. } => {
                    Ok(ApiVersionsResponse::default().with_error_code(35))
                }
                e => Err(e),
            })?;
        if resp.error_code == 35 {
            resp = self.call_version(&ApiVersionsRequest::default(), 0).await?;
        }
        if resp.error_code != 0 {
            return Err(KafkaError::broker(
                "ApiVersions",
                &self.broker,
                resp.error_code,
            ));
        }
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The highest version of `R` that we, the codec crate and the broker all support,
    /// capped at `cap` (some versions change semantics we do not want, e.g. topic ids in Fetch
    /// v13+ and Produce v13+, KIP-516).
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        let ours = R::VERSIONS;
        let key = ApiKey::try_from(R::KEY)
            .map(|k| format!("{k:?}"))
            .unwrap_or_default();
        let (bmin, bmax) = *self
            .versions
            .get(&R::KEY)
            .ok_or_else(|| KafkaError::Protocol {
                broker: self.broker.clone(),
                reason: format!("broker does not support the {key} API"),
            })?;
        let v = ours.max.min(bmax).min(cap);
        if v < ours.min.max(bmin) {
            return Err(KafkaError::Protocol {
                broker: self.broker.clone(),
                reason: format!(
                    "no common version of {key}: broker {bmin}..{bmax}, client {}..{}",
                    ours.min,
                    ours.max.min(cap)
                ),
            });
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version (capped at `cap`) and decodes the response.
    pub async fn call<R: Request>(&self, req: &R, cap: i16) -> Result<(R::Response, i16)> {
        let v = self.version::<R>(cap)?;
        Ok((self.call_version(req, v).await?, v))
    }

    /// Sends `req` at version `v` and decodes the response.
    pub async fn call_version<R: Request>(&self, req: &R, v: i16) -> Result<R::Response> {
        self.enqueue(req, v).await?.wait().await
    }

    /// Sends without waiting for a reply (Produce with acks=0 gets none, per the protocol guide).
    pub async fn send_no_reply<R: Request>(&self, req: &R, v: i16) -> Result<()> {
        self.write::<R>(req, v, None).await
    }

    /// Queues `req` on this connection and returns a handle to await its response. Requests
    /// queued one after another are written, and answered by the broker, in that order (the
    /// protocol guide: a broker handles one connection's requests in order), which lets a
    /// caller keep several Produce requests for one partition in flight without reordering.
    pub async fn enqueue<R: Request>(&self, req: &R, v: i16) -> Result<Reply<R>> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.write::<R>(req, v, Some(Waiter::Whole(reply_tx)))
            .await?;
        Ok(Reply {
            rx: reply_rx,
            version: v,
            broker: self.broker.clone(),
            closed: self.closed.clone(),
            timeout: self.request_timeout,
            _r: std::marker::PhantomData,
        })
    }

    /// Queues `req` and returns a reader of its response body in chunks, so a response far
    /// larger than what the caller wants to hold (noida-db answers a Fetch with most of a
    /// partition, whatever `max_bytes` says) never sits in memory whole. The reader gets the
    /// bytes after the correlation id; at most 4 chunks of 256 KiB are buffered.
    pub async fn enqueue_streaming<R: Request>(&self, req: &R, v: i16) -> Result<ChunkReader> {
        let (tx, rx) = mpsc::channel(4);
        self.write::<R>(req, v, Some(Waiter::Stream(tx))).await?;
        Ok(ChunkReader {
            rx,
            cur: Bytes::new(),
            broker: self.broker.clone(),
            closed: self.closed.clone(),
            timeout: self.request_timeout,
        })
    }

    async fn write<R: Request>(&self, req: &R, v: i16, reply: Option<Waiter>) -> Result<()> {
        let correlation_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(v)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_v = R::header_version(v);
        let size = header
            .compute_size(header_v)
            .map_err(|e| self.protocol(e))?
            + req.compute_size(v).map_err(|e| self.protocol(e))?;
        let mut frame = BytesMut::with_capacity(4 + size);
        frame.put_i32(size as i32);
        header
            .encode(&mut frame, header_v)
            .map_err(|e| self.protocol(e))?;
        req.encode(&mut frame, v).map_err(|e| self.protocol(e))?;
        let out = Outgoing {
            frame,
            correlation_id,
            reply,
        };
        self.tx
            .send(out)
            .await
            .map_err(|_| self.lost("connection closed"))
    }

    fn protocol(&self, e: impl std::fmt::Display) -> KafkaError {
        KafkaError::Protocol {
            broker: self.broker.clone(),
            reason: e.to_string(),
        }
    }

    fn lost(&self, reason: &str) -> KafkaError {
        self.closed.store(true, Ordering::Relaxed);
        KafkaError::Io {
            broker: self.broker.clone(),
            reason: reason.to_string(),
        }
    }
}

async fn writer(
    mut w: tokio::io::WriteHalf<Box<dyn Stream>>,
    mut rx: mpsc::Receiver<Outgoing>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    broker: String,
) {
    while let Some(out) = rx.recv().await {
        if let Some(reply) = out.reply {
            pending.lock().unwrap().insert(out.correlation_id, reply);
        }
        if let Err(e) = w.write_all(&out.frame).await {
            fail_all(&pending, &closed, &broker, &e.to_string(), Failure::Lost);
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Reads responses until the connection ends and hands each to its waiter. `max_whole`
/// (bytes) caps an answer read whole ([`MAX_WHOLE_FRAME`]; smaller in tests).
async fn reader(
    mut r: tokio::io::ReadHalf<Box<dyn Stream>>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    broker: String,
    max_whole: usize,
) {
    loop {
        let len = match r.read_i32().await {
            // The size counts the correlation id (4 bytes) that every response header starts
            // with; less is not a Kafka response, and the stream can no longer be framed.
            Ok(n) if n >= 4 => n as usize,
            Ok(n) => {
                let reason = format!(
                    "invalid response size {n} bytes (a response holds at least its 4-byte correlation id)"
                );
                fail_all(&pending, &closed, &broker, &reason, Failure::Protocol);
                return;
            }
            Err(e) => {
                let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "broker closed the connection".to_string()
                } else {
                    e.to_string()
                };
                fail_all(&pending, &closed, &broker, &reason, Failure::Lost);
                return;
            }
        };
        let id = match r.read_i32().await {
            Ok(id) => id,
            Err(e) => {
                fail_all(&pending, &closed, &broker, &e.to_string(), Failure::Lost);
                return;
            }
        };
        let waiter = pending.lock().unwrap().remove(&id);
        let body = len - 4;
        let ok = match waiter {
            Some(Waiter::Stream(tx)) => stream_body(&mut r, body, &tx).await,
            Some(Waiter::Whole(w)) if len > max_whole => {
                // Too large to hold whole: skip it (the connection stays in step) and fail
                // only this request.
                let _ = w.send(Err(KafkaError::Protocol {
                    broker: broker.clone(),
                    reason: format!(
                        "response of {len} bytes is over the {max_whole}-byte limit for an answer read whole"
                    ),
                }));
                skip_body(&mut r, body).await
            }
            None => skip_body(&mut r, body).await,
            Some(Waiter::Whole(w)) => {
                let mut buf = BytesMut::with_capacity(len);
                buf.put_i32(id);
                buf.resize(len, 0);
                match r.read_exact(&mut buf[4..]).await {
                    Ok(_) => {
                        let _ = w.send(Ok(buf.freeze()));
                        Ok(())
                    }
                    Err(e) => {
                        let _ = w.send(Err(KafkaError::Io {
                            broker: broker.clone(),
                            reason: format!("answer cut short: {e}"),
                        }));
                        Err(e)
                    }
                }
            }
        };
        if let Err(e) = ok {
            fail_all(&pending, &closed, &broker, &e.to_string(), Failure::Lost);
            return;
        }
    }
}

/// Reads and drops `len` bytes (an answer nobody waits for any more, or one refused), in
/// [`STREAM_CHUNK`] pieces so that no large buffer is allocated.
async fn skip_body(
    r: &mut tokio::io::ReadHalf<Box<dyn Stream>>,
    len: usize,
) -> std::io::Result<()> {
    let mut sink = tokio::io::sink();
    let copied = tokio::io::copy(&mut r.take(len as u64), &mut sink).await?;
    if copied < len as u64 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Forwards `len` bytes of a response in chunks. If the receiver went away, the rest is still
/// read (and dropped) so the connection stays in step.
async fn stream_body(
    r: &mut tokio::io::ReadHalf<Box<dyn Stream>>,
    mut len: usize,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> std::io::Result<()> {
    let mut receiver_alive = true;
    while len > 0 {
        let n = len.min(STREAM_CHUNK);
        let mut buf = BytesMut::zeroed(n);
        r.read_exact(&mut buf).await?;
        len -= n;
        if receiver_alive && tx.send(Ok(buf.freeze())).await.is_err() {
            receiver_alive = false;
        }
    }
    Ok(())
}

/// Pull-style reader of a streamed response body (see [`Connection::enqueue_streaming`]).
pub struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes>>,
    cur: Bytes,
    broker: String,
    closed: Arc<AtomicBool>,
    timeout: Duration,
}

/// Waits for `fut` up to `timeout`, warning once when `stall_warning_after()` passes with no
/// answer (a stalled or stopped broker is visible long before the request times out).
/// `None` on timeout.
async fn wait_warning<F: std::future::Future>(
    fut: F,
    timeout: Duration,
    broker: &str,
    api: &str,
) -> Option<F::Output> {
    let warn_after = super::config::stall_warning_after();
    if warn_after >= timeout {
        return tokio::time::timeout(timeout, fut).await.ok();
    }
    tokio::pin!(fut);
    if let Ok(r) = tokio::time::timeout(warn_after, &mut fut).await {
        return Some(r);
    }
    tracing::warn!(
        broker,
        api,
        waited_ms = warn_after.as_millis() as u64,
        timeout_ms = timeout.as_millis() as u64,
        "broker {broker} has not answered {api} for {} s; waiting up to kafkaCluster.connection.requestTimeoutMs ({} ms)",
        warn_after.as_secs(),
        timeout.as_millis()
    );
    tokio::time::timeout(timeout - warn_after, fut).await.ok()
}

impl ChunkReader {
    /// The next `n` bytes of the response.
    ///
    /// Errors: [`KafkaError::Io`] if the connection broke or the response ended early,
    /// [`KafkaError::Timeout`] if no bytes came for `requestTimeoutMs`.
    pub async fn take(&mut self, n: usize) -> Result<Bytes> {
        if self.cur.len() >= n {
            return Ok(self.cur.split_to(n));
        }
        let mut out = BytesMut::with_capacity(n);
        out.extend_from_slice(&self.cur);
        self.cur = Bytes::new();
        while out.len() < n {
            let chunk = match wait_warning(self.rx.recv(), self.timeout, &self.broker, "Fetch")
                .await
                .ok_or(())
            {
                Err(_) => {
                    // Retire the connection: its stream is dead or far behind.
                    self.closed.store(true, Ordering::Relaxed);
                    return Err(KafkaError::Timeout {
                        broker: self.broker.clone(),
                        api: "Fetch".into(),
                        timeout_ms: self.timeout.as_millis() as u64,
                    });
                }
                Ok(None) => {
                    return Err(KafkaError::Io {
                        broker: self.broker.clone(),
                        reason: "response ended early".into(),
                    });
                }
                Ok(Some(c)) => c?,
            };
            let need = n - out.len();
            if chunk.len() <= need {
                out.extend_from_slice(&chunk);
            } else {
                out.extend_from_slice(&chunk[..need]);
                self.cur = chunk.slice(need..);
            }
        }
        Ok(out.freeze())
    }

    /// Skips `n` bytes.
    pub async fn skip(&mut self, mut n: usize) -> Result<()> {
        while n > 0 {
            let k = n.min(STREAM_CHUNK);
            self.take(k).await?;
            n -= k;
        }
        Ok(())
    }
}

/// Why every request in flight fails: the connection broke ([`KafkaError::Io`], retried after
/// a reconnect) or the broker sent bytes that are not a Kafka response
/// ([`KafkaError::Protocol`], not retried: the same broker will answer the same way).
#[derive(Clone, Copy)]
enum Failure {
    Lost,
    Protocol,
}

fn fail_all(pending: &Pending, closed: &AtomicBool, broker: &str, reason: &str, why: Failure) {
    closed.store(true, Ordering::Relaxed);
    for (_, w) in pending.lock().unwrap().drain() {
        let (broker, reason) = (broker.to_string(), reason.to_string());
        let e = match why {
            Failure::Lost => KafkaError::Io { broker, reason },
            Failure::Protocol => KafkaError::Protocol { broker, reason },
        };
        match w {
            Waiter::Whole(w) => {
                let _ = w.send(Err(e));
            }
            Waiter::Stream(w) => {
                let _ = w.try_send(Err(e));
            }
        }
    }
}

/// A request in flight; [`Reply::wait`] yields its decoded response.
pub struct Reply<R: Request> {
    rx: oneshot::Receiver<Result<Bytes>>,
    version: i16,
    broker: String,
    closed: Arc<AtomicBool>,
    timeout: Duration,
    _r: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> Reply<R> {
    /// Waits up to `requestTimeoutMs` for the response and decodes it.
    pub async fn wait(self) -> Result<R::Response> {
        let api = ApiKey::try_from(R::KEY)
            .map(|k| format!("{k:?}"))
            .unwrap_or_default();
        let protocol = |e: anyhow::Error| KafkaError::Protocol {
            broker: self.broker.clone(),
            reason: format!("{api}: {e}"),
        };
        let mut body = match wait_warning(self.rx, self.timeout, &self.broker, &api)
            .await
            .ok_or(())
        {
            Err(_) => {
                // Retire the connection: the caller retries elsewhere.
                self.closed.store(true, Ordering::Relaxed);
                return Err(KafkaError::Timeout {
                    broker: self.broker.clone(),
                    api,
                    timeout_ms: self.timeout.as_millis() as u64,
                });
            }
            Ok(Err(_)) => {
                return Err(KafkaError::Io {
                    broker: self.broker.clone(),
                    reason: "connection closed".into(),
                });
            }
            Ok(Ok(r)) => r?,
        };
        let resp_header_v = <R::Response as HeaderVersion>::header_version(self.version);
        ResponseHeader::decode(&mut body, resp_header_v).map_err(protocol)?;
        R::Response::decode(&mut body, self.version).map_err(protocol)
    }
}

#[cfg(test)]
mod tests {
    //! The framing layer alone: bytes no real broker sends on purpose (a broken size field,
    //! an answer over the limit), written into an in-memory pipe.
    use super::*;

    /// A reader task on one end of a pipe, with the given waiters registered; returns the
    /// writing end and the connection's closed flag.
    fn spawn_reader(
        waiters: Vec<(i32, Waiter)>,
        max_whole: usize,
    ) -> (tokio::io::DuplexStream, Arc<AtomicBool>) {
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        let boxed: Box<dyn Stream> = Box::new(ours);
        let (read, _write) = tokio::io::split(boxed);
        let pending: Pending = Arc::default();
        pending.lock().unwrap().extend(waiters);
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(reader(
            read,
            pending,
            closed.clone(),
            "b:9092".into(),
            max_whole,
        ));
        (theirs, closed)
    }

    fn frame(id: i32, body: &[u8]) -> Vec<u8> {
        let mut f = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        f.extend(id.to_be_bytes());
        f.extend(body);
        f
    }

    #[tokio::test]
    async fn a_size_below_four_bytes_is_a_protocol_error_not_a_lost_connection() {
        let (tx, rx) = oneshot::channel();
        let (mut peer, closed) = spawn_reader(vec![(1, Waiter::Whole(tx))], 1 << 20);
        peer.write_all(&(-5i32).to_be_bytes()).await.unwrap();
        let e = rx.await.unwrap().unwrap_err();
        assert!(matches!(e, KafkaError::Protocol { .. }), "{e:?}");
        assert_eq!(e.category(), "kafka");
        assert!(!e.is_retriable());
        assert!(
            e.to_string().contains("invalid response size -5 bytes"),
            "{e}"
        );
        assert!(closed.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn an_answer_over_the_whole_limit_fails_only_its_request_and_the_next_one_arrives() {
        let (big_tx, big_rx) = oneshot::channel();
        let (next_tx, next_rx) = oneshot::channel();
        let (mut peer, closed) = spawn_reader(
            vec![(1, Waiter::Whole(big_tx)), (2, Waiter::Whole(next_tx))],
            1024,
        );
        peer.write_all(&frame(1, &[7u8; 4096])).await.unwrap();
        peer.write_all(&frame(2, b"ok")).await.unwrap();
        let e = big_rx.await.unwrap().unwrap_err();
        assert!(matches!(e, KafkaError::Protocol { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("response of 4100 bytes is over the 1024-byte limit"),
            "{e}"
        );
        let next = next_rx.await.unwrap().unwrap();
        assert_eq!(&next[4..], b"ok");
        assert_eq!(&next[..4], &2i32.to_be_bytes());
        assert!(!closed.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_streamed_answer_is_not_bound_by_the_whole_limit() {
        let (tx, mut rx) = mpsc::channel(8);
        let (mut peer, closed) = spawn_reader(vec![(1, Waiter::Stream(tx))], 1024);
        let body: Vec<u8> = (0..(STREAM_CHUNK * 2 + 10)).map(|i| i as u8).collect();
        let writer = tokio::spawn(async move {
            peer.write_all(&frame(1, &body)).await.unwrap();
            (peer, body)
        });
        let mut got = Vec::new();
        while let Some(chunk) = rx.recv().await {
            got.extend_from_slice(&chunk.unwrap());
            if got.len() == STREAM_CHUNK * 2 + 10 {
                break;
            }
        }
        let (_peer, body) = writer.await.unwrap();
        assert_eq!(got, body);
        assert!(!closed.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn an_answer_nobody_waits_for_is_skipped_and_the_stream_stays_in_step() {
        let (tx, rx) = oneshot::channel();
        let (mut peer, _closed) = spawn_reader(vec![(9, Waiter::Whole(tx))], 1 << 20);
        peer.write_all(&frame(8, &[1u8; 300_000])).await.unwrap();
        peer.write_all(&frame(9, b"mine")).await.unwrap();
        assert_eq!(&rx.await.unwrap().unwrap()[4..], b"mine");
    }

    #[tokio::test]
    async fn a_connection_closed_mid_answer_is_a_lost_connection() {
        let (tx, rx) = oneshot::channel();
        let (mut peer, closed) = spawn_reader(vec![(1, Waiter::Whole(tx))], 1 << 20);
        let f = frame(1, &[0u8; 100]);
        peer.write_all(&f[..50]).await.unwrap();
        drop(peer);
        let e = rx.await.unwrap().unwrap_err();
        assert!(matches!(e, KafkaError::Io { .. }), "{e:?}");
        assert_eq!(e.category(), "broker-unreachable");
        assert!(closed.load(Ordering::Relaxed));
    }
}
