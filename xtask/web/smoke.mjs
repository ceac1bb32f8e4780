// The browser app's smoke check, run by `cargo xtask web-smoke`: headless Chromium opens the
// page the authority serves, on WebGPU (SwiftShader's Vulkan, with the flags that give an
// adapter) or, without them, on WebGL2; the page must pick that renderer, the app must say it
// is online within a minute and draw the demo song with every waveform; the screenshot and the
// layout the page published for it are kept for the checks that follow. A page with a field in
// focus and nothing changing must not keep running frames. Then the page loads again, from the
// browser's warm HTTP cache, and reports how soon it drew and came online.
import { writeFileSync } from "node:fs";
import { launch, recordTimes, until } from "./pages.mjs";

const [url, out, want] = process.argv.slice(2);
const webgpu = ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-angle=swiftshader"];
const browser = await launch(1280, 720, want === "webgpu" ? webgpu : []);
let online = null;
let renderer = null;
const page = await browser.newPage();
// When, after navigation, the page first drew, drew the whole song, and said it was online.
await recordTimes(page);
page.on("console", (message) => {
  const text = message.text();
  const said = text.match(/ENSEMBLE (online as \S+|renderer \S+)/);
  if (said?.[1].startsWith("online")) online = said[1];
  if (said?.[1].startsWith("renderer")) renderer = said[1];
  if (/panicked|cannot start/.test(text)) console.log(`page: ${text}`);
});
page.on("pageerror", (error) => console.log(`page error: ${error.message}`));
await page.goto(url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
while (!online && Date.now() < started + 60_000) await sleep(250);
const onlineAfter = Date.now() - started;
// The song is drawn once its clips are and every waveform's peaks have arrived.
const layout = () => page.evaluate(() => window.ensembleLayout && JSON.parse(window.ensembleLayout));
let drawn = null;
while (Date.now() < started + 180_000) {
  drawn = await layout();
  if (drawn && drawn.clips.length > 0 && drawn.waiting_for_peaks === 0) break;
  await sleep(250);
}
const completeAfter = Date.now() - started;
// A few frames more, then the picture and the layout of the same (still) scene.
await sleep(1000);
await page.screenshot({ path: out });
writeFileSync(out.replace(/\.png$/, ".layout.json"), JSON.stringify(await layout()));
// Sound waits for a gesture where the browser says so (headless Chromium often lets a page start
// it unasked): the prompt shows exactly while a context waits, and a click starts them all.
const sound = () =>
  page.evaluate(() => ({
    prompt: getComputedStyle(document.getElementById("sound")).display !== "none",
    states: window.ensembleAudio.map((context) => context.state),
  }));
const before = await sound();
await page.mouse.click(640, 400);
await sleep(500);
const after = await sound();
// Frame times while playing (the app draws every frame then): the page's one thread runs the
// app, so the gaps between animation frames are the app's frames.
await page.keyboard.press("Space");
await sleep(500);
const gaps = await page.evaluate(
  () =>
    new Promise((resolve) => {
      const gaps = [];
      let last = performance.now();
      const frame = (now) => {
        gaps.push(now - last);
        last = now;
        // Five seconds' worth, however slow the frames.
        if (gaps.reduce((sum, gap) => sum + gap, 0) < 5000) requestAnimationFrame(frame);
        else resolve(gaps);
      };
      requestAnimationFrame(frame);
    }),
);
await page.keyboard.press("Space");
// Stopped, with a field in focus (the tempo, clicked as a user does), the app runs a frame only
// when something changes and once a second: nothing on it moves, and a page that kept drawing would
// hold up every keystroke behind a frame (here 80–180 ms each).
await sleep(1000);
const tempo = (await layout()).tempo.rect;
await page.mouse.click((tempo[0] + tempo[2]) / 2, (tempo[1] + tempo[3]) / 2);
await sleep(1000);
const framesBefore = await page.evaluate(() => window.ensembleFrames);
await sleep(3000);
const focusedFrames = (await page.evaluate(() => window.ensembleFrames)) - framesBefore;
await page.keyboard.press("Escape");
gaps.sort((a, b) => a - b);
const frames = { p50: gaps[Math.floor(gaps.length * 0.5)].toFixed(1), p99: gaps[Math.floor(gaps.length * 0.99)].toFixed(1) };
const cold = await page.evaluate(() => window.ensembleTimes);
// The same page again: the download and the compiled module come from the browser's cache.
await page.reload();
const warm = await until("the page reloaded, online and drawn", 120_000, () =>
  page.evaluate(() => (window.ensembleTimes.online && window.ensembleTimes.song ? window.ensembleTimes : null)),
);
const ms = (times) => Object.fromEntries(Object.entries(times).map(([name, at]) => [name, Math.round(at)]));
await browser.close();
const heard =
  before.prompt === before.states.includes("suspended") && !after.prompt && after.states.length > 0 &&
  after.states.every((state) => state === "running");
const loaded = { cold: ms(cold), warm: ms(warm) };
console.log(JSON.stringify({ renderer, online, onlineAfter, completeAfter, loaded, frames, focusedFrames, before, after }));
// Three timed frames in 3 s, and room for a few that news or the click's settling asks.
const idle = focusedFrames <= 8;
if (!idle) console.log(`a page with a field in focus drew ${focusedFrames} frames in 3 s with nothing changing`);
process.exit(online && renderer === `renderer ${want}` && heard && idle ? 0 : 1);
