//! The two deadlines kube-apiserver's HTTP server keeps on a connection: a request's headers
//! must arrive within the read-header timeout (32 s), and a keep-alive connection with no
//! request in flight is closed after the idle timeout (90 s). These are Go's
//! `http.Server.ReadHeaderTimeout` and `IdleTimeout`, which kube-apiserver sets in
//! `SecureServingInfo.Serve` (`staging/src/k8s.io/apiserver/pkg/server/secure_serving.go`). Go
//! counts them as follows (`net/http` `conn.serve`): the header time of a connection's first
//! request from the connection's start (after the TLS handshake, which axum-server's rustls
//! acceptor limits to 10 s), and of a later one from its first bytes; the idle time from the
//! end of the previous response, once written, until those bytes.
//!
//! hyper has one timer for both: its `header_read_timeout` starts as soon as a connection
//! waits for a request, so an idle keep-alive connection was closed after 32 s, and clients
//! that keep idle connections for 90 s (Go's `http.DefaultTransport`, so client-go) raced the
//! close. The deadlines are therefore kept here: [`DeadlineAcceptor`] wraps each connection's
//! stream in [`DeadlineIo`] and its service in [`TrackedService`], which count the requests
//! in flight on the connection. A request is in flight from the first poll of its future
//! (hyper polls it right after parsing the headers) until hyper drops its response body, so a
//! watch keeps its connection busy. hyper drops the body once its last bytes are buffered, not
//! written: while a write is blocked the idle deadline waits, and it restarts when the write
//! goes through. Ending a request wakes the connection's task, because hyper reads an idle
//! connection (and so polls the deadline) only when woken. HTTP/2 connections (those that
//! open with the client preface) and connections upgraded by a `101 Switching Protocols`
//! answer get no deadline (kube-apiserver also closes HTTP/2 connections idle for 90 s, with a
//! GOAWAY that only hyper's connection could send).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, Response, StatusCode};
use axum_server::accept::Accept;
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The deadlines; a zero duration turns its deadline off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// From the start of a request (the accept, or the first bytes after an idle wait) to the
    /// end of its headers.
    pub header: Duration,
    /// From the end of the last response to the first bytes of the next request.
    pub idle: Duration,
}

impl ConnectionTimeouts {
    /// kube-apiserver's: 32 s to send the headers, 90 s idle.
    pub const KUBE_APISERVER: ConnectionTimeouts = ConnectionTimeouts {
        header: Duration::from_secs(32),
        idle: Duration::from_secs(90),
    };
}

/// What the stream and the service of one connection share.
#[derive(Debug, Default)]
struct Activity {
    /// Requests handed to the service whose response body has not been dropped yet.
    in_flight: AtomicUsize,
    /// Bumped each time the last request in flight ends: the connection turned idle then.
    idled: AtomicU64,
    /// A response switched protocols: the stream is no longer HTTP.
    upgraded: AtomicBool,
    /// The task that last read the stream: woken when a request ends, so that the stream
    /// starts its idle deadline (hyper does not read an idle connection unless woken).
    reader: AtomicWaker,
}

/// One request in flight; dropping it ends the request.
struct InFlight {
    activity: Arc<Activity>,
}

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            activity: activity.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // `idled` moves before `in_flight` reaches zero, so a reader that sees no request in
        // flight also sees the bump and starts the idle deadline from now.
        self.activity.idled.fetch_add(1, Ordering::SeqCst);
        if self.activity.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.activity.reader.wake();
        }
    }
}

/// Which deadline the stream is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the headers of a request.
    Header,
    /// Waiting for the first bytes of the next request.
    Idle,
    /// A request is in flight.
    Busy,
    /// HTTP/2 or upgraded: no deadline.
    Exempt,
}

/// The first bytes of an HTTP/2 connection (RFC 9113, section 3.4); an HTTP/1 request never
/// starts with them, since `PRI` is not a method.
const HTTP2_PREFACE_START: &[u8] = b"PRI ";

/// A connection's stream under [`ConnectionTimeouts`]: a read past the header deadline fails
/// with `TimedOut`, a read past the idle deadline ends the stream (hyper then closes the
/// connection as a client would see a server close it).
pub struct DeadlineIo<S> {
    inner: S,
    activity: Arc<Activity>,
    timeouts: ConnectionTimeouts,
    phase: Phase,
    /// The value of `Activity::idled` this stream last acted on.
    seen_idled: u64,
    /// The connection's first bytes, until there are enough to tell HTTP/2 from HTTP/1.
    start: Vec<u8>,
    /// A write or flush returned `Pending`: the response is not out yet, so the connection is
    /// not idle.
    write_blocked: bool,
    deadline: Pin<Box<Sleep>>,
}

/// `limit` from now; a limit past what an `Instant` can hold ends in about 30 years, as
/// tokio's `sleep` does.
fn deadline_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

impl<S> DeadlineIo<S> {
    fn new(inner: S, activity: Arc<Activity>, timeouts: ConnectionTimeouts) -> Self {
        DeadlineIo {
            inner,
            activity,
            timeouts,
            phase: Phase::Header,
            seen_idled: 0,
            start: Vec::with_capacity(HTTP2_PREFACE_START.len()),
            write_blocked: false,
            deadline: Box::pin(tokio::time::sleep(timeouts.header)),
        }
    }

    /// Restarts the deadline of the current phase from now.
    fn restart_deadline(&mut self) {
        let limit = match self.phase {
            Phase::Header => self.timeouts.header,
            Phase::Idle => self.timeouts.idle,
            Phase::Busy | Phase::Exempt => return,
        };
        if !limit.is_zero() {
            self.deadline.as_mut().reset(deadline_after(limit));
        }
    }

    /// Moves to the phase the shared activity calls for.
    fn follow_activity(&mut self) {
        if self.phase == Phase::Exempt {
            return;
        }
        if self.activity.upgraded.load(Ordering::SeqCst) {
            self.phase = Phase::Exempt;
            return;
        }
        if self.activity.in_flight.load(Ordering::SeqCst) > 0 {
            self.phase = Phase::Busy;
            return;
        }
        let idled = self.activity.idled.load(Ordering::SeqCst);
        if idled != self.seen_idled {
            self.seen_idled = idled;
            self.phase = Phase::Idle;
            self.restart_deadline();
        }
    }

    /// Accounts a write or flush that returned `polled`: while idle (the response's last
    /// bytes going out), a blocked write suspends the idle time, and the write that goes
    /// through after it restarts it.
    fn on_write<T>(&mut self, polled: &Poll<io::Result<T>>) {
        let blocked = polled.is_pending();
        if self.phase == Phase::Idle && self.write_blocked && !blocked {
            self.restart_deadline();
            // The deadline must be polled by a read to be armed; hyper may not read again by
            // itself after its last flush.
            self.activity.reader.wake();
        }
        self.write_blocked = blocked;
    }

    /// Accounts bytes just read.
    fn on_read(&mut self, bytes: &[u8]) {
        if self.start.len() < HTTP2_PREFACE_START.len() {
            let wanted = HTTP2_PREFACE_START.len() - self.start.len();
            self.start
                .extend_from_slice(&bytes[..wanted.min(bytes.len())]);
            if self.start.len() == HTTP2_PREFACE_START.len() && self.start == HTTP2_PREFACE_START {
                self.phase = Phase::Exempt;
                return;
            }
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Header;
            self.restart_deadline();
        }
    }

    /// The deadline in force now, if any.
    fn limit(&self) -> Option<Duration> {
        let limit = match self.phase {
            Phase::Header => self.timeouts.header,
            // A response still going out keeps the connection from being idle.
            Phase::Idle if !self.write_blocked => self.timeouts.idle,
            Phase::Idle | Phase::Busy | Phase::Exempt => return None,
        };
        (!limit.is_zero()).then_some(limit)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeadlineIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.follow_activity();
        if this.phase != Phase::Exempt {
            this.activity.reader.register(cx.waker());
        }
        if let Some(limit) = this.limit() {
            if this.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(match this.phase {
                    // End of stream: a client sees the server close an idle connection.
                    Phase::Idle => Ok(()),
                    _ => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("request headers not received within {limit:?}"),
                    )),
                });
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let filled = buf.filled();
            if filled.len() > before {
                this.on_read(&filled[before..]);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's service that counts its requests in flight for [`DeadlineIo`].
#[derive(Clone)]
pub struct TrackedService<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for TrackedService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Entered when hyper first polls the request's future, right after parsing its headers,
        // and held by the response body until hyper drops it after buffering the last bytes.
        let in_flight = InFlight::enter(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                in_flight.activity.upgraded.store(true, Ordering::SeqCst);
            }
            Ok(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is dropped.
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts each connection an inner acceptor hands over under [`ConnectionTimeouts`].
#[derive(Clone, Debug)]
pub struct DeadlineAcceptor<A> {
    inner: A,
    timeouts: ConnectionTimeouts,
}

impl<A> DeadlineAcceptor<A> {
    /// Wraps `inner`'s connections (after its TLS handshake, if it does one).
    pub fn new(inner: A, timeouts: ConnectionTimeouts) -> Self {
        DeadlineAcceptor { inner, timeouts }
    }
}

impl<I, S, A> Accept<I, S> for DeadlineAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = DeadlineIo<A::Stream>;
    type Service = TrackedService<A::Service>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        let timeouts = self.timeouts;
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let activity = Arc::new(Activity::default());
            Ok((
                DeadlineIo::new(stream, activity.clone(), timeouts),
                TrackedService {
                    inner: service,
                    activity,
                },
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const TIMEOUTS: ConnectionTimeouts = ConnectionTimeouts {
        header: Duration::from_secs(2),
        idle: Duration::from_secs(10),
    };

    /// A wrapped server end, the client end, and the activity the service would share.
    fn connection() -> (DeadlineIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        (
            DeadlineIo::new(server, activity.clone(), TIMEOUTS),
            client,
            activity,
        )
    }

    /// Reads what is there after `wait`, or the read's error kind; `None` if the read is
    /// still pending (the connection stays open).
    async fn read_after(
        io: &mut DeadlineIo<DuplexStream>,
        wait: Duration,
    ) -> Option<Result<Vec<u8>, io::ErrorKind>> {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(wait, io.read(&mut buf)).await {
            Ok(Ok(n)) => Some(Ok(buf[..n].to_vec())),
            Ok(Err(error)) => Some(Err(error.kind())),
            Err(_) => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_request_must_send_its_headers_within_the_header_timeout() {
        let (mut io, _client, _) = connection();
        assert_eq!(read_after(&mut io, Duration::from_millis(1900)).await, None);
        assert_eq!(
            read_after(&mut io, Duration::from_secs(1)).await,
            Some(Err(io::ErrorKind::TimedOut))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_outlives_the_header_timeout_and_closes_at_the_idle_one() {
        let (mut io, mut client, activity) = connection();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(
            read_after(&mut io, Duration::from_millis(10)).await,
            Some(Ok(b"GET / HTTP/1.1\r\n\r\n".to_vec()))
        );
        // The request is served, and its response ends.
        drop(InFlight::enter(&activity));
        assert_eq!(read_after(&mut io, Duration::from_secs(9)).await, None);
        assert_eq!(
            read_after(&mut io, Duration::from_secs(2)).await,
            Some(Ok(Vec::new())),
            "the idle deadline ends the stream"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_requests_first_bytes_start_its_header_deadline() {
        let (mut io, mut client, activity) = connection();
        drop(InFlight::enter(&activity));
        assert_eq!(read_after(&mut io, Duration::from_secs(5)).await, None);
        client.write_all(b"GET / HT").await.unwrap();
        assert_eq!(
            read_after(&mut io, Duration::from_millis(10)).await,
            Some(Ok(b"GET / HT".to_vec()))
        );
        assert_eq!(read_after(&mut io, Duration::from_millis(1900)).await, None);
        assert_eq!(
            read_after(&mut io, Duration::from_secs(1)).await,
            Some(Err(io::ErrorKind::TimedOut))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_has_no_deadline() {
        let (mut io, _client, activity) = connection();
        let watch = InFlight::enter(&activity);
        assert_eq!(read_after(&mut io, Duration::from_secs(60)).await, None);
        drop(watch);
        assert_eq!(read_after(&mut io, Duration::from_secs(9)).await, None);
        assert_eq!(
            read_after(&mut io, Duration::from_secs(2)).await,
            Some(Ok(Vec::new()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_request_wakes_a_pending_read_into_the_idle_deadline() {
        let (mut io, _client, activity) = connection();
        let watch = InFlight::enter(&activity);
        // One read, polled once while busy and then only when woken, as hyper reads.
        let read = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            io.read(&mut buf).await.map_err(|e| e.kind())
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!read.is_finished());
        drop(watch);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!read.is_finished(), "closed before the idle timeout");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ended = tokio::time::timeout(Duration::from_secs(5), read).await;
        assert_eq!(
            ended.expect("the read was never woken").unwrap(),
            Ok(0),
            "the idle deadline ends the stream"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_still_going_out_keeps_the_connection_from_idling() {
        let (io, mut client, activity) = connection();
        let (mut reader, mut writer) = tokio::io::split(io);
        let response = InFlight::enter(&activity);
        // More than the pipe holds: the write blocks until the client reads.
        let write = tokio::spawn(async move {
            writer.write_all(&[b'x'; 4096]).await.unwrap();
            writer.flush().await.unwrap();
            writer
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!write.is_finished());
        // hyper drops the body once its last bytes are buffered, before they are written.
        drop(response);
        let read = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            reader.read(&mut buf).await.map_err(|e| e.kind())
        });
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(
            !read.is_finished(),
            "closed while the response was going out"
        );
        let mut received = vec![0u8; 4096];
        client.read_exact(&mut received).await.unwrap();
        let _writer = write.await.unwrap();
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(
            !read.is_finished(),
            "the idle time did not restart at the last write"
        );
        let ended = tokio::time::timeout(Duration::from_secs(5), read).await;
        assert_eq!(ended.expect("the read was never woken").unwrap(), Ok(0));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_and_upgraded_connections_have_no_deadline() {
        let (mut io, mut client, _) = connection();
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert!(matches!(
            read_after(&mut io, Duration::from_millis(10)).await,
            Some(Ok(bytes)) if bytes.starts_with(b"PRI ")
        ));
        assert_eq!(read_after(&mut io, Duration::from_secs(60)).await, None);

        let (mut io, _client, activity) = connection();
        activity.upgraded.store(true, Ordering::SeqCst);
        assert_eq!(read_after(&mut io, Duration::from_secs(60)).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_and_unrepresentable_timeouts_turn_their_deadline_off() {
        for limit in [Duration::ZERO, Duration::MAX] {
            let (server, _client) = tokio::io::duplex(64);
            let activity = Arc::new(Activity::default());
            let timeouts = ConnectionTimeouts {
                header: limit,
                idle: limit,
            };
            let mut io = DeadlineIo::new(server, activity.clone(), timeouts);
            assert_eq!(read_after(&mut io, Duration::from_secs(3600)).await, None);
            drop(InFlight::enter(&activity));
            assert_eq!(read_after(&mut io, Duration::from_secs(3600)).await, None);
            assert_eq!(io.phase, Phase::Idle, "{limit:?}");
        }
    }

    #[tokio::test]
    async fn a_switching_protocols_answer_exempts_the_connection() {
        let activity = Arc::new(Activity::default());
        for (status, upgraded) in [
            (StatusCode::OK, false),
            (StatusCode::SWITCHING_PROTOCOLS, true),
        ] {
            let mut service = TrackedService {
                inner: tower::service_fn(move |_: Request<()>| async move {
                    Ok::<_, std::convert::Infallible>(
                        Response::builder().status(status).body(()).unwrap(),
                    )
                }),
                activity: activity.clone(),
            };
            let response = tower::Service::call(&mut service, Request::new(()))
                .await
                .unwrap();
            assert_eq!(activity.in_flight.load(Ordering::SeqCst), 1);
            drop(response);
            assert_eq!(activity.in_flight.load(Ordering::SeqCst), 0);
            assert_eq!(
                activity.upgraded.load(Ordering::SeqCst),
                upgraded,
                "{status}"
            );
        }
    }
}
