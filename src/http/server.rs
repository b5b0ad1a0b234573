//! Accepting and serving connections, with the bounds a server on the open internet needs.
//!
//! This replaces `axum::serve` (axum 0.8), which runs hyper 1.x without a timer: hyper's
//! header read timeout then silently does nothing, and a client that sends half a request
//! holds its connection, and a file descriptor, for ever. Here:
//! - hyper's HTTP/1.1 connection gets tokio's timer, so a client has
//!   `QUIRE_HEADER_TIMEOUT` to send a request's headers, the first as every later one on
//!   a kept-alive connection (hyper starts the clock when it waits for a request);
//! - a connection with nothing read or written for `QUIRE_IDLE_TIMEOUT`, and no request
//!   being answered, is closed: a client that stops reading a response cannot hold it
//!   (the request timeout, a layer of the router, ends only the handler);
//! - at most `QUIRE_MAX_CONNECTIONS` connections are served at once (beyond that, new
//!   ones wait in the listen queue), and at most `QUIRE_MAX_CONNECTIONS_PER_ADDRESS` from
//!   one client address (beyond that, they are closed at once). Trusted proxies carry
//!   many clients' connections and are held to the first bound only. A WebSocket keeps
//!   its connection's place for as long as it lives.
//!
//! What `axum::serve` did is kept: the peer address as `ConnectInfo`, upgrades (for
//! WebSockets), and a graceful shutdown that lets each connection finish its request.

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
    time::Instant,
};
use tower::ServiceExt;

use super::counted::{Counted, Counts};
use crate::{auth::throttle::client_network, config::Connections};

/// Serves `router` on `listener` until `shutdown` completes, then lets each connection
/// finish the request it is answering, and returns once all have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Connections,
    trusted_proxies: Vec<IpAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let places = Arc::new(Semaphore::new(limits.max));
    let addresses = Counts::default();
    let (closing, closing_seen) = watch::channel(false);
    // Each connection holds a sender; once all are gone, every connection has ended.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = places.clone().acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection that died in the queue: wait a
                    // moment rather than spin.
                    tracing::debug!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let address = if trusted_proxies.contains(&ip) {
            None
        } else {
            match addresses.take(client_network(ip), limits.per_address) {
                Some(address) => Some(address),
                None => {
                    tracing::debug!(%ip, "too many connections from one address; closing");
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let io = Watched::new(
            stream,
            Place {
                _place: place,
                _address: address,
            },
        );
        tokio::spawn(connection(
            io,
            peer,
            router.clone(),
            limits,
            closing_seen.clone(),
            open.clone(),
        ));
    }
    drop(listener);
    let _ = closing.send(true);
    drop(open);
    let _ = all_closed.recv().await;
}

/// Serves one connection until it ends, idles too long, or is asked to finish.
async fn connection(
    io: Watched,
    peer: SocketAddr,
    router: Router,
    limits: Connections,
    mut closing: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
) {
    let activity = io.activity.clone();
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let answering = Answering::start(&activity);
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(answering);
                response
            }
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut asked_to_finish = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            changed = closing.changed(), if !asked_to_finish => {
                asked_to_finish = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = activity.idle_for(limits.idle_timeout) => {
                tracing::debug!(%peer, "connection idle too long; closing");
                break;
            }
        }
    }
}

/// What a connection holds while it lives: its place among all connections, and among
/// its address's (unless it comes from a trusted proxy).
struct Place {
    _place: OwnedSemaphorePermit,
    _address: Option<Counted<IpAddr>>,
}

/// When a connection last read or wrote, and how many of its requests are being answered.
struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the last read or write.
    last: AtomicU64,
    answering: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let now = self.started.elapsed().as_millis();
        self.last
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Completes once the connection has gone `timeout` with nothing read or written
    /// and no request being answered.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.started + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                if self.answering.load(Ordering::Relaxed) == 0 {
                    return;
                }
                // A request takes its time (within the request timeout): look again later.
                tokio::time::sleep(timeout).await;
            } else {
                tokio::time::sleep_until(deadline).await;
            }
        }
    }
}

/// A request being answered, until dropped.
struct Answering(Arc<Activity>);

impl Answering {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.answering.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.touch();
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that notes when it last made progress, and holds its connection's place.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    _place: Place,
}

impl Watched {
    fn new(stream: TcpStream, place: Place) -> Self {
        Self {
            stream,
            activity: Arc::new(Activity {
                started: Instant::now(),
                last: AtomicU64::new(0),
                answering: AtomicUsize::new(0),
            }),
            _place: place,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
