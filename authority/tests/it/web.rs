//! The web app over HTTP: its files with the headers a cross-origin isolated page needs, and
//! the configuration that tells the page where to open its WebTransport session.

use ensemble_authority::server::{ServerOptions, WEBTRANSPORT_PATH};
use ensemble_authority::web::{WebOptions, WebServer};
use ensemble_net::transport::PageConfig;
use ensemble_testkit::loopback::Loopback;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response, as status, lowercase headers and body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// `GET path` over a plain TCP connection, as a browser would send it.
async fn get(web: &WebServer, path: &str) -> Response {
    get_with(web, path, "").await
}

/// `GET path` with `headers` (each line ending in CRLF) added.
async fn get_with(web: &WebServer, path: &str, headers: &str) -> Response {
    let mut stream = tokio::net::TcpStream::connect(web.local_addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok()).unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    Response { status, headers, body: raw[split + 4..].to_vec() }
}

#[tokio::test]
async fn the_web_app_is_served_isolated_with_the_endpoint_and_hashes_to_pin() {
    let (store, dir) = crate::harness::sqlite().await;
    let site = dir.path().join("web");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<canvas id=ensemble></canvas>").unwrap();
    std::fs::write(site.join("ensemble_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let authority = Loopback::start(store, ServerOptions::default()).await;
    let options = WebOptions { listen: "127.0.0.1:0".parse().unwrap(), dir: site.clone() };
    let web = WebServer::start(options, &authority.server).await.unwrap();

    let page = get(&web, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, b"<canvas id=ensemble></canvas>");
    assert_eq!(page.header("cross-origin-opener-policy"), Some("same-origin"));
    assert_eq!(page.header("cross-origin-embedder-policy"), Some("require-corp"));
    let wasm = get(&web, "/ensemble_bg.wasm").await;
    assert_eq!(wasm.header("content-type"), Some("application/wasm"), "browsers stream-compile only this type");
    assert_eq!(wasm.header("cross-origin-resource-policy"), Some("same-origin"));
    assert!(wasm.header("last-modified").is_some(), "a browser's cache revalidates by date");
    assert_eq!(get(&web, "/missing.js").await.status, 404);
    assert_eq!(get(&web, "/../authority.sqlite").await.status, 404, "nothing outside the folder");

    // A release writes compressed copies beside the module: browsers that accept one get it.
    std::fs::write(site.join("ensemble_bg.wasm.br"), b"brotli bytes").unwrap();
    std::fs::write(site.join("ensemble_bg.wasm.gz"), b"gzip bytes").unwrap();
    let br = get_with(&web, "/ensemble_bg.wasm", "Accept-Encoding: gzip, deflate, br\r\n").await;
    assert_eq!((br.header("content-encoding"), br.body.as_slice()), (Some("br"), &b"brotli bytes"[..]));
    assert_eq!(br.header("content-type"), Some("application/wasm"));
    let gz = get_with(&web, "/ensemble_bg.wasm", "Accept-Encoding: gzip\r\n").await;
    assert_eq!((gz.header("content-encoding"), gz.body.as_slice()), (Some("gzip"), &b"gzip bytes"[..]));
    let plain = get(&web, "/ensemble_bg.wasm").await;
    assert_eq!((plain.header("content-encoding"), plain.body.as_slice()), (None, &b"\0asm\x01\0\0\0"[..]));

    let config = get(&web, "/ensemble.json").await;
    assert_eq!(config.header("cache-control"), Some("no-store"));
    let config: PageConfig = serde_json::from_slice(&config.body).unwrap();
    let hex = |hashes: Vec<ensemble_net::tls::Fingerprint>| -> Vec<String> {
        hashes.iter().map(|hash| hash.0.iter().map(|byte| format!("{byte:02x}")).collect()).collect()
    };
    assert_eq!(config.port, authority.addr.port());
    assert_eq!(config.path, WEBTRANSPORT_PATH);
    assert_eq!(config.certificate_hashes, hex(authority.server.certificate_hashes()));
    authority.server.certificates().rotate().unwrap();
    let rotated: PageConfig = serde_json::from_slice(&get(&web, "/ensemble.json").await.body).unwrap();
    assert_eq!(rotated.certificate_hashes, hex(authority.server.certificate_hashes()), "a rotation shows at once");
    assert_eq!(rotated.certificate_hashes[0], config.certificate_hashes[1]);
    web.stop();
    authority.server.shutdown().await;
}

#[tokio::test]
async fn a_folder_without_the_app_is_refused_at_start() {
    let (store, dir) = crate::harness::sqlite().await;
    let authority = Loopback::start(store, ServerOptions::default()).await;
    let options = WebOptions { listen: "127.0.0.1:0".parse().unwrap(), dir: dir.path().join("nothing") };
    let error = WebServer::start(options, &authority.server).await.unwrap_err();
    assert!(error.to_string().contains("index.html"), "{error}");
    authority.server.shutdown().await;
}
