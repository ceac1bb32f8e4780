// What the browser checks share: headless Chromium, pages of the DAW, and reading what they draw.
// Each page publishes the layout of its last frame as JSON in `window.ensembleLayout`; a page
// opened here also records when each tempo first showed and when it first drew (see
// `recordTimes`), so a check can time it without asking the app anything else.
import puppeteer from "puppeteer-core";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// Headless Chromium on WebGL2 (SwiftShader): the renderer every machine here has. It
/// rasterises the app's frames in software, at a cost that grows with the pixels (about 170 ms
/// a frame at 1280×720 on this machine, 75 ms at 800×480, 50 ms at 640×400), and a page's
/// events wait for its frames: the checks that time edits use a small window (`width`, `height`). `flags`: Chromium's own more.
export async function launch(width = 1280, height = 720, flags = []) {
  return puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: "new",
    args: ["--no-sandbox", ...flags],
    defaultViewport: { width, height },
  });
}

/// Waits until `ready()` is truthy, asking every `every` ms; fails after `limit` ms saying `what`.
export async function until(what, limit, ready, every = 20) {
  const deadline = Date.now() + limit;
  for (;;) {
    const value = await ready();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${limit} ms`);
    await sleep(every);
  }
}

/// Has `page` record, on its own clock from each navigation, what the checks time:
/// `window.tempoSeen` (each tempo text's first showing, wall-clock ms) and `window.ensembleTimes`
/// (ms after navigation: the first frame drawn, the whole song drawn, "online" said). The page
/// publishes its layout whenever a frame changes it, so a reader polling it adds nothing.
export async function recordTimes(page) {
  await page.evaluateOnNewDocument(() => {
    window.tempoSeen = {};
    window.ensembleTimes = {};
    const note = (name) => {
      window.ensembleTimes[name] ??= performance.now();
    };
    let layout;
    Object.defineProperty(window, "ensembleLayout", {
      configurable: true,
      get: () => layout,
      set: (value) => {
        layout = value;
        note("frame");
        const drawn = JSON.parse(value);
        if (drawn.clips.length > 0 && drawn.waiting_for_peaks === 0) note("song");
        const text = drawn.tempo?.text;
        if (text && !(text in window.tempoSeen)) window.tempoSeen[text] = performance.timeOrigin + performance.now();
      },
    });
    for (const level of ["log", "info", "debug"]) {
      const original = console[level];
      console[level] = (...args) => {
        if (String(args[0]).includes("ENSEMBLE online")) note("online");
        return original.apply(console, args);
      };
    }
  });
}

/// A page of the DAW at `url` in a browser context of its own (its own IndexedDB, as another
/// person's browser has), signed in as `name`.
export async function openPage(browser, url, name, context = null) {
  context ??= await browser.createBrowserContext();
  const page = await context.newPage();
  await recordTimes(page);
  page.state = { online: false, log: [] };
  page.on("console", (message) => {
    const text = message.text();
    page.state.log.push(text);
    if (page.state.log.length > 40) page.state.log.shift();
    if (/ENSEMBLE online/.test(text)) page.state.online = true;
    if (/ENSEMBLE connection/.test(text)) page.state.online = false;
    if (/panicked|cannot start/.test(text)) console.log(`${name}: ${text}`);
  });
  page.on("pageerror", (error) => console.log(`${name}: page error: ${error.message}`));
  await page.goto(`${url}&name=${name}`);
  return page;
}

/// The layout the page drew last.
export async function layout(page) {
  const json = await page.evaluate(() => window.ensembleLayout);
  return json ? JSON.parse(json) : null;
}

/// Waits until the page shows the project: clips drawn, each with its waveform.
export async function drawn(page, limit = 180_000) {
  return until("the project drawn", limit, async () => {
    const shown = await layout(page);
    return shown && shown.clips.length > 0 && shown.waiting_for_peaks === 0 && shown.tempo ? shown : null;
  }, 250);
}

/// The page's wall clock, in ms.
export const now = (page) => page.evaluate(() => performance.timeOrigin + performance.now());

/// Types `bpm` into the tempo field as a user does: a click on the field (which selects its
/// text), the digits, Enter. Returns when Enter was pressed (the page's clock) and the text
/// the field will show.
export async function typeTempo(page, bpm) {
  const shown = await layout(page);
  const [left, top, right, bottom] = shown.tempo.rect;
  await page.mouse.click((left + right) / 2, (top + bottom) / 2);
  // A frame or two for the field to turn into a text box.
  await sleep(100);
  await page.keyboard.type(bpm.toFixed(1));
  const sent = await now(page);
  await page.keyboard.press("Enter");
  return { sent, text: `${bpm.toFixed(1)} BPM` };
}

/// Percentiles of `values` (sorted copy), nearest rank.
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
