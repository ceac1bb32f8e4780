// The browser app's smoke check, run by `cargo xtask web-smoke`: headless Chromium opens the
// page the authority serves, on WebGPU (SwiftShader's Vulkan, with the flags that give an
// adapter) or, without them, on WebGL2; the page must pick that renderer, the app must say it
// is online within a minute, and the screenshot is kept for the check that follows.
import puppeteer from "puppeteer-core";

const [url, out, want] = process.argv.slice(2);
const webgpu = ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-angle=swiftshader"];
const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium",
  headless: "new",
  args: ["--no-sandbox", ...(want === "webgpu" ? webgpu : [])],
  defaultViewport: { width: 1280, height: 720 },
});
let online = null;
let renderer = null;
const page = await browser.newPage();
page.on("console", (message) => {
  const text = message.text();
  const said = text.match(/ENSEMBLE (online as \S+|renderer \S+)/);
  if (said?.[1].startsWith("online")) online = said[1];
  if (said?.[1].startsWith("renderer")) renderer = said[1];
  if (/panicked|cannot start/.test(text)) console.log(`page: ${text}`);
});
page.on("pageerror", (error) => console.log(`page error: ${error.message}`));
await page.goto(url);
const deadline = Date.now() + 60_000;
while (!online && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
// A few frames after connecting, so the project is drawn.
await new Promise((r) => setTimeout(r, 3000));
await page.screenshot({ path: out });
// Sound waits for a gesture, with the prompt showing; a click starts it and the prompt goes.
const before = await page.evaluate(() => ({
  prompt: getComputedStyle(document.getElementById("sound")).display !== "none",
  states: window.ensembleAudio.map((context) => context.state),
}));
await page.mouse.click(640, 400);
await new Promise((r) => setTimeout(r, 500));
const after = await page.evaluate(() => ({
  prompt: document.getElementById("sound") !== null,
  states: window.ensembleAudio.map((context) => context.state),
}));
await browser.close();
const sound =
  before.prompt && before.states.includes("suspended") && !after.prompt && after.states.length > 0 &&
  after.states.every((state) => state === "running");
console.log(JSON.stringify({ renderer, online, before, after }));
process.exit(online && renderer === `renderer ${want}` && sound ? 0 : 1);
