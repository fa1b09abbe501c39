// Opens the single-file Allure report in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) as a person would, and prints one JSON object with what it saw.
//
//   node reports/browser-check.mjs REPORT.html SCREENSHOT_DIR [--open "TEST NAME"]...
//
// Every request the page makes that is not file:, data: or blob: is blocked and listed in
// "external_requests" (a stakeholder's report must load nothing from outside the file). For the
// overview it records the tree's groups (epic → phase → criterion), the tests, the metadata
// (environment and executor) and the Categories tab; for each --open test, its status, its text,
// its attachments' names, and the images an expanded attachment shows (the SVG charts). Screenshots:
// overview.png, categories.png and test-N.png in SCREENSHOT_DIR, each of the whole content.
// Used by selftest/test_report_browser.py; Chromium needs these flags as root on a closed network.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.GOLDENPATH_CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
const TIMEOUT = 30_000;

const args = process.argv.slice(2);
const positional = [];
const open = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--open") open.push(args[++i]);
  else positional.push(args[i]);
}
if (positional.length !== 2 || open.includes(undefined)) {
  console.error('usage: node browser-check.mjs REPORT.html SCREENSHOT_DIR [--open "TEST NAME"]...');
  process.exit(2);
}
const report = pathToFileURL(resolve(positional[0])).href;
const shots = resolve(positional[1]);
mkdirSync(shots, { recursive: true });

const seen = {
  report, external_requests: [], page_errors: [], console_errors: [],
  title: null, groups: [], tests: [], metadata: {}, categories_text: null, opened: [], screenshots: [],
};
const profile = mkdtempSync(join(tmpdir(), "goldenpath-chromium-")); // a fresh --user-data-dir
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1400, height: 1000 },
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (/^(file|data|blob|about):/i.test(url)) return route.continue();
    seen.external_requests.push(url);
    return route.abort("blockedbyclient");
  });
  page.on("pageerror", (e) => seen.page_errors.push(String(e.message || e)));
  page.on("console", (m) => { if (m.type() === "error") seen.console_errors.push(m.text()); });

  const load = async () => {
    await page.setViewportSize({ width: 1400, height: 1000 });
    await page.goto(report);
    await page.getByTestId("tree-section-title").first().waitFor();
  };
  // The report scrolls inside its own containers: grow the viewport to the content, then shoot.
  const shoot = async (name) => {
    await page.setViewportSize({ width: 1400, height: 1000 });
    for (let pass = 0; pass < 3; pass++) {   // growing the viewport can grow the layout: repeat until it fits
      await page.waitForTimeout(300);
      const height = await page.evaluate(() => Math.max(
        ...[...document.querySelectorAll("body, body *")].map((e) => e.scrollHeight)));
      const want = Math.min(Math.max(1000, height + 80), 12000);
      if (want <= page.viewportSize().height) break;
      await page.setViewportSize({ width: 1400, height: want });
    }
    const path = join(shots, name);
    await page.screenshot({ path, fullPage: true });
    seen.screenshots.push(path);
    return path;
  };
  const texts = (testId) => page.getByTestId(testId).allInnerTexts();
  // An attachment's header reads "N\nname\ntype\nsize": its name is the first line after the number.
  const attachmentName = (text) => {
    const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
    if (/^\d+$/.test(lines[0] ?? "")) lines.shift();
    return lines[0] ?? "";
  };

  await load();
  seen.title = await page.title();
  seen.groups = (await texts("tree-section-title")).map((t) => t.trim());
  seen.tests = (await texts("tree-leaf-title")).map((t) => t.trim());
  // The first "Show more" of the overview is the metadata's (environment and executor).
  const more = page.getByRole("button", { name: "Show more" });
  if (await more.count()) await more.first().click();
  const keys = await texts("metadata-item-key");
  const values = await texts("metadata-item-value");
  keys.forEach((k, i) => { seen.metadata[k.trim()] = (values[i] ?? "").trim(); });
  seen.overview_text = await page.locator("body").innerText();
  await shoot("overview.png");

  await page.getByTestId("nav-tab-categories").click();
  await page.waitForTimeout(500);
  seen.categories_text = await page.locator("body").innerText();
  await shoot("categories.png");

  for (const [n, name] of open.entries()) {
    await load();
    await page.getByTestId("tree-leaf-title").getByText(name, { exact: true }).first().click();
    await page.getByTestId("test-result-info-title").waitFor();
    const attachments = (await texts("test-result-attachment-header")).map(attachmentName);
    // Expand the attachments that are collapsed, so that an image shows what a person would see.
    const headers = page.getByTestId("test-result-attachment-header");
    for (let i = 0; i < (await headers.count()); i++) {
      const header = headers.nth(i);
      const text = (await header.innerText()).toLowerCase();
      if (text.includes("image/") && !(await page.getByTestId("test-result-attachment").nth(i).locator("img").count())) {
        await header.click();
      }
    }
    await page.waitForTimeout(500);
    const images = (await page.evaluate(() => [...document.querySelectorAll('[data-testid="test-result-attachment"] img')]
      .map((img) => ({
        header: img.closest('[data-testid="test-result-attachment"]')
          ?.querySelector('[data-testid="test-result-attachment-header"]')?.innerText ?? "",
        complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
      })))).map(({ header, ...img }) => ({ attachment: attachmentName(header), ...img }));
    const status = await page.locator('[data-testid^="test-result-status-"]').first().getAttribute("data-testid");
    const error = page.getByTestId("test-result-error-message");
    seen.opened.push({
      name,
      title: (await page.getByTestId("test-result-info-title").innerText()).trim(),
      status: status ? status.replace("test-result-status-", "") : null,
      error: (await error.count()) ? (await error.first().innerText()).trim() : null,
      attachments, images,
      text: await page.locator("body").innerText(),
      screenshot: await shoot(`test-${n + 1}.png`),
    });
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen, null, 2));
