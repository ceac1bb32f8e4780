//! Connections in memory: both ends in one process, streams as in-memory pipes. The way a
//! single-player game talks to its own server, and how tests reach an authority without
//! sockets, timers or TLS.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::{Notify, mpsc};

use super::{Closed, Connection};
use crate::Error;

/// How many bytes a stream holds in flight before its writer waits.
const STREAM_BUFFER: usize = 256 << 10;

/// What both ends of a pipe share: whether it has closed, and who to wake when it does.
#[derive(Debug, Default)]
struct Shared {
    closed: Mutex<Option<Closed>>,
    wakers: Mutex<Vec<Weak<Mutex<Option<Waker>>>>>,
    closing: Notify,
}

impl Shared {
    fn closed(&self) -> Option<Closed> {
        self.closed.lock().ok().and_then(|closed| closed.clone())
    }

    /// A slot a stream half keeps its waker in, so a close wakes it.
    fn slot(&self) -> Arc<Mutex<Option<Waker>>> {
        let slot = Arc::new(Mutex::new(None));
        if let Ok(mut wakers) = self.wakers.lock() {
            wakers.retain(|waker| waker.strong_count() > 0);
            wakers.push(Arc::downgrade(&slot));
        }
        slot
    }

    fn close(&self, closed: Closed) {
        if let Ok(mut slot) = self.closed.lock() {
            if slot.is_some() {
                return;
            }
            *slot = Some(closed);
        }
        self.closing.notify_waiters();
        let wakers = self.wakers.lock().map(|wakers| wakers.clone()).unwrap_or_default();
        for waker in wakers.iter().filter_map(Weak::upgrade) {
            if let Some(waker) = waker.lock().ok().and_then(|mut waker| waker.take()) {
                waker.wake();
            }
        }
    }

    /// The error a stream half gives once the connection has closed.
    fn failure(&self) -> Option<io::Error> {
        self.closed().map(|closed| io::Error::new(io::ErrorKind::ConnectionAborted, closed.to_error().to_string()))
    }
}

type Streams = (PipeSend, PipeRecv);

/// One end of an in-memory connection.
#[derive(Clone, Debug)]
pub struct Pipe {
    shared: Arc<Shared>,
    to_peer: mpsc::UnboundedSender<Streams>,
    from_peer: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Streams>>>,
}

/// Two connected ends.
pub fn pair() -> (Pipe, Pipe) {
    let shared = Arc::new(Shared::default());
    let (to_b, from_a) = mpsc::unbounded_channel();
    let (to_a, from_b) = mpsc::unbounded_channel();
    let a = Pipe { shared: shared.clone(), to_peer: to_b, from_peer: Arc::new(tokio::sync::Mutex::new(from_b)) };
    let b = Pipe { shared, to_peer: to_a, from_peer: Arc::new(tokio::sync::Mutex::new(from_a)) };
    (a, b)
}

impl Pipe {
    /// Whether the connection still stands: neither end closed it and the other end still
    /// exists (an end dropped without closing leaves nobody to talk to).
    pub fn is_alive(&self) -> bool {
        self.shared.closed().is_none() && !self.to_peer.is_closed()
    }

    fn halves(&self, stream: DuplexStream) -> Streams {
        let (read, write) = tokio::io::split(stream);
        let send = PipeSend { write, shared: self.shared.clone() };
        let recv = PipeRecv { read, shared: self.shared.clone(), waker: self.shared.slot() };
        (send, recv)
    }
}

impl Connection for Pipe {
    type SendStream = PipeSend;
    type RecvStream = PipeRecv;

    async fn open_bi(&self) -> Result<Streams, Error> {
        if let Some(closed) = self.shared.closed() {
            return Err(closed.to_error());
        }
        let (ours, theirs) = tokio::io::duplex(STREAM_BUFFER);
        self.to_peer.send(self.halves(theirs)).map_err(|_| Error::Connection("the other end is gone".into()))?;
        Ok(self.halves(ours))
    }

    async fn accept_bi(&self) -> Option<Streams> {
        let mut from_peer = self.from_peer.lock().await;
        let closing = self.shared.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.shared.closed().is_some() {
            return None;
        }
        tokio::select! {
            streams = from_peer.recv() => streams,
            () = closing => None,
        }
    }

    fn close(&self, code: u32, reason: &[u8]) {
        let reason = String::from_utf8_lossy(reason).into_owned();
        self.shared.close(Closed::Application { code, reason });
    }

    fn closed(&self) -> Option<Closed> {
        self.shared.closed()
    }

    async fn wait_closed(&self) {}

    fn peer_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// A pipe stream's sending half.
#[derive(Debug)]
pub struct PipeSend {
    write: WriteHalf<DuplexStream>,
    shared: Arc<Shared>,
}

impl AsyncWrite for PipeSend {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(error) = self.shared.failure() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.write).poll_write(cx, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

/// A pipe stream's receiving half: it fails as soon as the connection closes, as a QUIC
/// stream does.
#[derive(Debug)]
pub struct PipeRecv {
    read: ReadHalf<DuplexStream>,
    shared: Arc<Shared>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl AsyncRead for PipeRecv {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // The waker first: a close that comes after the check below still wakes this read.
        if let Ok(mut waker) = self.waker.lock() {
            *waker = Some(cx.waker().clone());
        }
        if let Some(error) = self.shared.failure() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}
