// Offline in the browser, run by `cargo xtask web-collab` after the collaboration check: the page
// comes from a static server of its own (as from a CDN), so it still loads while the authority is
// down. The authority stops; the page makes 50 tempo edits through the tempo field and reloads,
// and must still show the last one (IndexedDB kept them); the authority returns on the same port
// and certificate, and the project's seq must grow by exactly 50: every edit landed, once.
//
// Usage: node offline.mjs SITE_DIR PROJECT AUTHORITY_JSON
//   AUTHORITY_JSON: the authority's command line up to `serve` (binary, --data-dir DIR)
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { createInterface } from "node:readline";
import { drawn, launch, layout, openPage, sleep, typeTempo, until } from "./pages.mjs";

const [site, project, authorityJson] = process.argv.slice(2);
const [program, ...base] = JSON.parse(authorityJson);
const EDITS = 50;

/// Starts `serve` on `listen`; resolves with its port and hashes once it says them.
function serve(listen) {
  const child = spawn(program, [...base, "serve", "--open", "--listen", listen], { stdio: ["ignore", "pipe", "ignore"] });
  return new Promise((resolve, reject) => {
    const said = {};
    createInterface({ input: child.stdout }).on("line", (line) => {
      const port = line.match(/^ensemble-authority listening on .*:(\d+)$/);
      const hashes = line.match(/^certificate hashes \(SHA-256, current,next\): (.+)$/);
      if (port) said.port = Number(port[1]);
      if (hashes) said.hashes = hashes[1].split(",");
      if (said.port && said.hashes) resolve({ child, ...said });
    });
    child.on("exit", (code) => reject(new Error(`the authority exited (${code})`)));
  });
}

/// The project's seq, as the operator's `project list` says it.
function seq() {
  const listing = execFileSync(program, [...base, "project", "list"], { encoding: "utf8" });
  const line = listing.split("\n").find((row) => row.startsWith(project));
  return Number(line.match(/seq (\d+)/)[1]);
}

let authority = await serve("127.0.0.1:0");
const config = JSON.stringify({ port: authority.port, path: "/ensemble", certificate_hashes: authority.hashes });
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const pages = createServer((request, response) => {
  const path = new URL(request.url, "http://page").pathname;
  const headers = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
  };
  if (path === "/ensemble.json") {
    response.writeHead(200, { ...headers, "Content-Type": "application/json" }).end(config);
    return;
  }
  const file = normalize(join(site, path.endsWith("/") ? `${path}index.html` : path));
  try {
    if (!file.startsWith(site)) throw new Error("outside the site");
    const body = readFileSync(file);
    response.writeHead(200, { ...headers, "Content-Type": types[extname(file)] ?? "application/octet-stream" }).end(body);
  } catch {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => pages.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${pages.address().port}/?project=${project}`;

const browser = await launch(800, 480);
const report = {};
let failed = null;
try {
  const context = await browser.createBrowserContext();
  const page = await openPage(browser, url, "Offline", context);
  await drawn(page);
  await until("the page online", 60_000, () => page.state.online);
  const before = seq();

  authority.child.kill("SIGKILL");
  await until("the page noticing the authority is gone", 30_000, () => !page.state.online, 50);
  const start = Number.parseFloat((await layout(page)).tempo.text);
  let last = null;
  for (let edit = 0; edit < EDITS; edit++) {
    last = await typeTempo(page, start + 1 + edit * 0.5);
    await until(`the page showing ${last.text}`, 2000, async () => (await layout(page)).tempo.text === last.text);
  }
  // The worker stores each edit as it comes (one IndexedDB transaction per batch); once all 50
  // are in the project's database, a reload must find them.
  const stored = () =>
    page.evaluate(
      (name) =>
        new Promise((resolve) => {
          const open = indexedDB.open(name);
          open.onsuccess = () => {
            const count = open.result.transaction("pending").objectStore("pending").count();
            count.onsuccess = () => resolve(count.result);
            count.onerror = () => resolve(-1);
          };
          open.onerror = () => resolve(-1);
        }),
      `ensemble-${project.replaceAll("-", "")}`,
    );
  await until(`${EDITS} edits stored in IndexedDB`, 60_000, async () => (report.stored = await stored()) === EDITS, 250);
  await page.reload();
  const reloaded = await drawn(page);
  if (reloaded.tempo.text !== last.text) throw new Error(`after the reload the page shows ${reloaded.tempo.text}, not ${last.text}`);
  if (seq() !== before) throw new Error("the authority changed while it was down");

  const back = Date.now();
  authority = await serve(`127.0.0.1:${authority.port}`);
  await until("the page back online", 60_000, () => page.state.online, 50);
  await until(`the project's seq reaching ${before + EDITS}`, 60_000, () => seq() >= before + EDITS, 100);
  report.landed_after_return_ms = Date.now() - back;
  await sleep(3000);
  const after = seq();
  if (after !== before + EDITS) throw new Error(`${after - before} commits for ${EDITS} offline edits`);
  const shown = (await layout(page)).tempo.text;
  if (shown !== last.text) throw new Error(`online again, the page shows ${shown}, not ${last.text}`);
  report.offline_edits = EDITS;
  report.commits = after - before;
} catch (error) {
  failed = error.message;
} finally {
  authority.child.kill();
  pages.close();
  await browser.close();
}
console.log(JSON.stringify(report));
if (failed) {
  console.log(`offline check failed: ${failed}`);
  process.exit(1);
}
