//! A real browser (headless Chromium) against the authority: it loads the page from `--web`'s
//! server, reads `/ensemble.json`, pins the certificate hashes with `serverCertificateHashes`,
//! opens a WebTransport session and says hello in our framing; the authority welcomes it.

use std::process::Stdio;
use std::time::Duration;

use ensemble_authority::server::ServerOptions;
use ensemble_authority::web::{WebOptions, WebServer};
use ensemble_protocol::*;
use ensemble_testkit::loopback::Loopback;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The page: the hello frame the test made goes out on a bidirectional stream, and whatever
/// comes back is logged as hex for the test to decode.
fn page(hello: &[u8]) -> String {
    let hello: String = hello.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        r#"<!doctype html><script type="module">
const bytes = (hex) => new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));
const hex = (array) => Array.from(array, (b) => b.toString(16).padStart(2, "0")).join("");
try {{
  const config = await (await fetch("/ensemble.json")).json();
  const hashes = config.certificate_hashes.map((h) => ({{ algorithm: "sha-256", value: bytes(h) }}));
  const session = new WebTransport(`https://127.0.0.1:${{config.port}}${{config.path}}`, {{ serverCertificateHashes: hashes }});
  await session.ready;
  const stream = await session.createBidirectionalStream();
  const writer = stream.writable.getWriter();
  await writer.write(bytes("{hello}"));
  const reader = stream.readable.getReader();
  let got = new Uint8Array();
  while (got.length < 4 || got.length < 4 + new DataView(got.buffer).getUint32(0)) {{
    const {{ value, done }} = await reader.read();
    if (done) break;
    got = new Uint8Array([...got, ...value]);
  }}
  console.log(`ENSEMBLE isolated=${{self.crossOriginIsolated}} answer=${{hex(got)}}`);
  session.close();
}} catch (error) {{
  console.log(`ENSEMBLE failed: ${{error}}`);
}}
</script>"#
    )
}

#[tokio::test]
async fn headless_chromium_opens_a_session_with_what_the_page_is_served() {
    let (store, dir) = crate::harness::sqlite().await;
    let site = dir.path().join("web");
    std::fs::create_dir_all(&site).unwrap();
    let hello = ClientMsg::Hello { protocol_version: PROTOCOL_VERSION, client: "headless chromium".into() };
    std::fs::write(site.join("index.html"), page(&FrameCodec::default().encode_to_vec(&hello).unwrap())).unwrap();
    let authority = Loopback::start(store, ServerOptions::default()).await;
    let web = WebServer::start(WebOptions { listen: "127.0.0.1:0".parse().unwrap(), dir: site }, &authority.server)
        .await
        .unwrap();

    let mut chromium = tokio::process::Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("http://{}/", web.local_addr()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium (installed by `cargo xtask setup`)");
    let mut lines = BufReader::new(chromium.stderr.take().unwrap()).lines();
    let said = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("ENSEMBLE ") {
                return line[at + "ENSEMBLE ".len()..].trim_end_matches(|c| c != '"').trim_end_matches('"').to_owned();
            }
        }
        panic!("chromium exited without a word from the page");
    })
    .await
    .expect("the page spoke within a minute");
    let _ = chromium.kill().await;

    assert!(said.starts_with("isolated=true answer="), "the page is isolated and was answered: {said}");
    let answer: Vec<u8> = said.as_bytes()["isolated=true answer=".len()..]
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect();
    let (welcome, _) = FrameCodec::default().decode::<ServerMsg>(&answer).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }), "the authority welcomes the browser: {welcome:?}");
    web.stop();
    authority.server.shutdown().await;
}
