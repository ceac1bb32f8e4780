// The seed's collaboration check, run by `cargo xtask web-collab`: an authority holding the demo
// song, two pages of the DAW (each in a browser context of its own) and one native client
// (`ensemble-follow`) on the same project. Page 1 changes the tempo 50 times through the tempo
// field, as a user does (a click where its layout says the field is, the digits, Enter); page 2
// and the native client must each show every new tempo within 2 s, and the latencies are
// reported. Then page 2 drags a clip along its track and page 1 must show it where page 2 does.
//
// Usage: node collab.mjs URL FOLLOWER_JSON   (FOLLOWER_JSON: the native client's command line)
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { drawn, launch, layout, openPage, percentile, sleep, typeTempo, until } from "./pages.mjs";

const [url, followerJson] = process.argv.slice(2);
const EDITS = 50;
const LIMIT = 2000;

// The native client prints each tempo it takes in, with the wall-clock time.
const [program, ...args] = JSON.parse(followerJson);
const follower = spawn(program, args, { stdio: ["ignore", "pipe", "inherit"] });
const nativeSeen = {};
createInterface({ input: follower.stdout }).on("line", (line) => {
  const { tempo, at_ms } = JSON.parse(line);
  const text = `${tempo.toFixed(1)} BPM`;
  if (!(text in nativeSeen)) nativeSeen[text] = at_ms;
});

const browser = await launch();
let failed = null;
const report = {};
try {
  const started = Date.now();
  const [page1, page2] = [await openPage(browser, url, "Page1"), await openPage(browser, url, "Page2")];
  await Promise.all([drawn(page1), drawn(page2)]);
  report.both_drawn_ms = Date.now() - started;
  await until("the native client following", 30_000, () => Object.keys(nativeSeen).length > 0);

  const toPage2 = [];
  const toNative = [];
  const base = Number.parseFloat((await layout(page1)).tempo.text);
  for (let edit = 0; edit < EDITS; edit++) {
    const bpm = base + 1 + edit * 0.5;
    const { sent, text } = await typeTempo(page1, bpm);
    const seen2 = await until(`page 2 showing ${text}`, LIMIT, () => page2.evaluate((t) => window.tempoSeen[t], text), 5);
    const seenNative = await until(`the native client showing ${text}`, LIMIT, () => nativeSeen[text], 5);
    toPage2.push(seen2 - sent);
    toNative.push(seenNative - sent);
    const shown = (await layout(page1)).tempo.text;
    if (shown !== text) throw new Error(`page 1 shows ${shown} after typing ${text}`);
  }
  const stats = (values) => ({
    p50: percentile(values, 50).toFixed(1),
    p90: percentile(values, 90).toFixed(1),
    p99: percentile(values, 99).toFixed(1),
    max: Math.max(...values).toFixed(1),
  });
  report.edits = EDITS;
  report.tempo_to_page2_ms = stats(toPage2);
  report.tempo_to_native_ms = stats(toNative);

  // Page 2 drags the last clip of the last track one bar or so to the right.
  const before = await layout(page2);
  const clip = before.waveforms[before.waveforms.length - 1];
  const [left, top, right, bottom] = clip.swatch;
  const [x, y] = [(left + right) / 2, (top + bottom) / 2];
  await page2.mouse.move(x, y);
  await page2.mouse.down();
  for (let step = 1; step <= 10; step++) {
    await page2.mouse.move(x + step * 12, y);
    await sleep(30);
  }
  await page2.mouse.up();
  const moved = await until("page 2 showing the clip moved", 5000, async () => {
    const now = await layout(page2);
    const same = JSON.stringify(now.waveforms) === JSON.stringify(before.waveforms);
    return same ? null : now.waveforms;
  }, 50);
  const movedAt = Date.now();
  await until("page 1 showing the clip where page 2 moved it", 5000, async () => {
    const now = await layout(page1);
    return JSON.stringify(now.waveforms) === JSON.stringify(moved);
  }, 20);
  report.clip_move_to_page1_ms = Date.now() - movedAt;
} catch (error) {
  failed = error.message;
} finally {
  follower.kill();
  await browser.close();
}
console.log(JSON.stringify(report));
if (failed) {
  console.log(`collaboration check failed: ${failed}`);
  process.exit(1);
}
