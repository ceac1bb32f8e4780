//! The web app, served over HTTP on TCP beside the authority: the browser build's files from a
//! folder, and `/ensemble.json`, which tells the page where the WebTransport endpoint is and
//! which certificate hashes to pin (read at each request, so a rotation shows at once).
//!
//! Every response carries the headers that make the page cross-origin isolated (COOP
//! `same-origin`, COEP `require-corp`), which shared memory and an audio worklet need; the
//! files are served by `tower-http`'s `ServeDir` (MIME types, ranges, no path escapes,
//! `Last-Modified` for a browser's cache), and a file's brotli or gzip copy beside it
//! (`x.wasm.br`, `x.wasm.gz`, which a release build writes) goes to browsers that accept it.
//!
//! Browsers allow WebTransport only from a secure context: `http://localhost` and
//! `http://127.0.0.1` are, a LAN address over plain HTTP is not.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::get;
use ensemble_net::transport::PageConfig;
use tokio::task::JoinHandle;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::Error;
use crate::server::{Server, WEBTRANSPORT_PATH};
use crate::tls::Certificates;

/// Where the web app is served from, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebOptions {
    /// The TCP address to listen on.
    pub listen: SocketAddr,
    /// The folder holding `index.html`, the JavaScript and the wasm.
    pub dir: PathBuf,
}

/// The web app's HTTP server, running.
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl WebServer {
    /// Serves `options.dir` and the page's configuration for `server`.
    pub async fn start(options: WebOptions, server: &Server) -> Result<WebServer, Error> {
        if !options.dir.join("index.html").is_file() {
            let dir = options.dir.display();
            return Err(Error::Config(format!("{dir} has no index.html: build the web app first (cargo xtask web)")));
        }
        let port = server.local_addr()?.port();
        let certificates = server.certificates().clone();
        let config = get(move || page_config(port, certificates.clone()));
        let isolated = [
            (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
            (HeaderName::from_static("cross-origin-embedder-policy"), "require-corp"),
            (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
        ];
        let mut app = Router::new()
            .route("/ensemble.json", config)
            .fallback_service(ServeDir::new(&options.dir).precompressed_br().precompressed_gzip());
        for (name, value) in isolated {
            app = app.layer(SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value)));
        }
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the web app's server stopped");
            }
        });
        Ok(WebServer { addr, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn page_config(port: u16, certificates: Certificates) -> impl axum::response::IntoResponse {
    let config = PageConfig::new(port, WEBTRANSPORT_PATH, &certificates.hashes());
    // The hashes change at each rotation: never cached.
    ([(header::CACHE_CONTROL, "no-store")], Json(config))
}
