//! The two deadlines kube-apiserver's HTTP server keeps on a connection: a request's headers
//! must arrive within the read-header timeout (32 s), and a keep-alive connection with no
//! request in flight is closed after the idle timeout (90 s). These are Go's
//! `http.Server.ReadHeaderTimeout` and `IdleTimeout`, which kube-apiserver sets in
//! `SecureServingInfo.Serve` (`staging/src/k8s.io/apiserver/pkg/server/secure_serving.go`). Go
//! counts them as follows (`net/http` `conn.serve`): the
//! header time of a connection's first request from the accept, and of a later one from its
//! first bytes; the idle time from the end of the previous response until those bytes.
//!
//! hyper has one timer for both: its `header_read_timeout` starts as soon as a connection
//! waits for a request, so an idle keep-alive connection was closed after 32 s, and clients
//! that keep idle connections for 90 s (Go's `http.DefaultTransport`, so client-go) raced the
//! close. The deadlines are therefore kept here: [`DeadlineAcceptor`] wraps each connection's
//! stream in [`DeadlineIo`] and its service in [`TrackedService`], which count the requests
//! in flight on the connection (a response is in flight until hyper drops its body, so a
//! watch keeps its connection busy). HTTP/2 connections (those that open with the client
//! preface) and connections upgraded by a `101 Switching Protocols` answer get no deadline
//! (kube-apiserver also closes HTTP/2 connections idle for 90 s, with a GOAWAY that only
//! hyper's connection could send).

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
        self.activity.in_flight.fetch_sub(1, Ordering::SeqCst);
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
    deadline: Pin<Box<Sleep>>,
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
            deadline: Box::pin(tokio::time::sleep(timeouts.header)),
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
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.timeouts.idle);
        }
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
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.timeouts.header);
        }
    }

    /// The deadline in force now, if any.
    fn limit(&self) -> Option<Duration> {
        let limit = match self.phase {
            Phase::Header => self.timeouts.header,
            Phase::Idle => self.timeouts.idle,
            Phase::Busy | Phase::Exempt => return None,
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
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
        // Entered before the handler runs and held by the response body until hyper drops it,
        // so a request is in flight from its parsed headers to its last byte written.
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
    async fn a_zero_timeout_turns_its_deadline_off() {
        let (server, _client) = tokio::io::duplex(64);
        let mut io = DeadlineIo::new(
            server,
            Arc::new(Activity::default()),
            ConnectionTimeouts {
                header: Duration::ZERO,
                idle: Duration::ZERO,
            },
        );
        assert_eq!(read_after(&mut io, Duration::from_secs(3600)).await, None);
    }
}
