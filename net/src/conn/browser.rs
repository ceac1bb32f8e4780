//! WebTransport in the browser (web-sys): the connection a page's client opens, pinning the
//! authority's certificate hashes as `serverCertificateHashes`. Its streams are the browser's
//! streams, read and written through `AsyncRead`/`AsyncWrite` like every other connection's.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use js_sys::{Reflect, Uint8Array};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    ReadableStreamDefaultReader, WebTransport, WebTransportBidirectionalStream, WebTransportCloseInfo,
    WebTransportHash, WebTransportOptions, WritableStreamDefaultWriter,
};

use super::{Closed, Connection};
use crate::Error;
use crate::tls::Fingerprint;

/// What a JavaScript error says.
fn describe(error: &JsValue) -> String {
    Reflect::get(error, &JsValue::from_str("message"))
        .ok()
        .and_then(|message| message.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"))
}

fn io_error(error: &JsValue) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, describe(error))
}

/// A WebTransport session opened by this page.
#[derive(Clone)]
pub struct BrowserConnection {
    transport: WebTransport,
    closed: Rc<RefCell<Option<Closed>>>,
    incoming: Rc<ReadableStreamDefaultReader>,
}

impl std::fmt::Debug for BrowserConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserConnection").field("closed", &self.closed.borrow()).finish_non_exhaustive()
    }
}

impl BrowserConnection {
    /// Opens a session to `url` (`https://host:port/ensemble`), trusting exactly the
    /// certificates with these hashes.
    pub async fn dial(url: &str, hashes: &[Fingerprint]) -> Result<Self, Error> {
        let pinned: Vec<WebTransportHash> = hashes
            .iter()
            .map(|hash| {
                let pin = WebTransportHash::new();
                pin.set_algorithm("sha-256");
                pin.set_value_u8_array(&Uint8Array::from(&hash.0[..]));
                pin
            })
            .collect();
        let options = WebTransportOptions::new();
        options.set_server_certificate_hashes(&pinned);
        let failed = |error: JsValue| Error::Connection(format!("WebTransport to {url}: {}", describe(&error)));
        let transport = WebTransport::new_with_options(url, &options).map_err(failed)?;
        transport.ready().await.map_err(failed)?;
        let closed = Rc::new(RefCell::new(None));
        let (watch, ending) = (closed.clone(), transport.closed());
        wasm_bindgen_futures::spawn_local(async move {
            let ended = match ending.await {
                Ok(info) => Closed::Application {
                    code: info.get_close_code().unwrap_or(0),
                    reason: info.get_reason().unwrap_or_default(),
                },
                Err(error) => Closed::Lost(describe(&error)),
            };
            *watch.borrow_mut() = Some(ended);
        });
        let incoming = ReadableStreamDefaultReader::new(&transport.incoming_bidirectional_streams()).map_err(failed)?;
        Ok(BrowserConnection { transport, closed, incoming: Rc::new(incoming) })
    }

    fn halves(stream: &WebTransportBidirectionalStream) -> Result<(BrowserSend, BrowserRecv), Error> {
        let failed = |error: JsValue| Error::Connection(describe(&error));
        let writer = WritableStreamDefaultWriter::new(&stream.writable()).map_err(failed)?;
        let reader = ReadableStreamDefaultReader::new(&stream.readable()).map_err(failed)?;
        let send = BrowserSend { writer, writing: None, closing: None };
        let recv = BrowserRecv { reader, reading: None, buffer: Vec::new(), at: 0, ended: false };
        Ok((send, recv))
    }
}

impl Connection for BrowserConnection {
    type SendStream = BrowserSend;
    type RecvStream = BrowserRecv;

    async fn open_bi(&self) -> Result<(BrowserSend, BrowserRecv), Error> {
        let stream = self.transport.create_bidirectional_stream().await;
        let stream = stream.map_err(|error| Error::Connection(describe(&error)))?;
        Self::halves(&stream)
    }

    async fn accept_bi(&self) -> Option<(BrowserSend, BrowserRecv)> {
        let next = JsFuture::from(self.incoming.read()).await.ok()?;
        if Reflect::get(&next, &JsValue::from_str("done")).ok()?.as_bool() != Some(false) {
            return None;
        }
        let stream = Reflect::get(&next, &JsValue::from_str("value")).ok()?;
        Self::halves(&stream.unchecked_into()).ok()
    }

    fn close(&self, code: u32, reason: &[u8]) {
        let info = WebTransportCloseInfo::new();
        info.set_close_code(code);
        info.set_reason(&String::from_utf8_lossy(reason));
        self.transport.close_with_close_info(&info);
    }

    fn closed(&self) -> Option<Closed> {
        self.closed.borrow().clone()
    }

    async fn wait_closed(&self) {}

    fn peer_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// A browser stream's sending half: each write hands a copy of the bytes to the stream's
/// writer, and the next write (or a flush) waits until the browser took it.
pub struct BrowserSend {
    writer: WritableStreamDefaultWriter,
    writing: Option<JsFuture>,
    closing: Option<JsFuture>,
}

impl std::fmt::Debug for BrowserSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSend").field("writing", &self.writing.is_some()).finish_non_exhaustive()
    }
}

/// Polls a pending browser promise, clearing it once it settles.
fn settle(pending: &mut Option<JsFuture>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let Some(future) = pending.as_mut() else { return Poll::Ready(Ok(())) };
    let settled = match Pin::new(future).poll(cx) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(settled) => settled,
    };
    *pending = None;
    Poll::Ready(settled.map(drop).map_err(|error| io_error(&error)))
}

impl AsyncWrite for BrowserSend {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        if let Err(error) = std::task::ready!(settle(&mut self.writing, cx)) {
            return Poll::Ready(Err(error));
        }
        let chunk = Uint8Array::from(bytes);
        self.writing = Some(JsFuture::from(self.writer.write_with_chunk(&chunk)));
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        settle(&mut self.writing, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(settle(&mut self.writing, cx))?;
        if self.closing.is_none() {
            self.closing = Some(JsFuture::from(self.writer.close()));
        }
        settle(&mut self.closing, cx)
    }
}

/// A browser stream's receiving half.
pub struct BrowserRecv {
    reader: ReadableStreamDefaultReader,
    reading: Option<JsFuture>,
    /// The chunk the browser handed over last, and how much of it was read.
    buffer: Vec<u8>,
    at: usize,
    ended: bool,
}

impl std::fmt::Debug for BrowserRecv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserRecv").field("buffered", &(self.buffer.len() - self.at)).finish_non_exhaustive()
    }
}

impl AsyncRead for BrowserRecv {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.at < self.buffer.len() {
                let n = out.remaining().min(self.buffer.len() - self.at);
                let at = self.at;
                out.put_slice(&self.buffer[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            if self.reading.is_none() {
                self.reading = Some(JsFuture::from(self.reader.read()));
            }
            let Some(reading) = self.reading.as_mut() else { continue };
            let next = match Pin::new(reading).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            self.reading = None;
            let next = next.map_err(|error| io_error(&error))?;
            let done = Reflect::get(&next, &JsValue::from_str("done")).map_err(|error| io_error(&error))?;
            if done.as_bool() == Some(true) {
                self.ended = true;
                continue;
            }
            let value = Reflect::get(&next, &JsValue::from_str("value")).map_err(|error| io_error(&error))?;
            self.buffer = Uint8Array::new(&value).to_vec();
            self.at = 0;
        }
    }
}
