// The console and the terminal page in a real headless Chromium (Debian's, via playwright-core).
// Run by tests/api/console.rs against a live greeter; environment: BASE, ADMIN_KEY, TERMINAL_KEY,
// PORTRAIT (a photo to enrol), FRAME (a photo with that face), SHOTS (screenshot folder).
// It prints "restart the service" when the test should restart greeter on the same port.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";

const { BASE, ADMIN_KEY, TERMINAL_KEY, PORTRAIT, FRAME, SHOTS } = process.env;
mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const step = async (name, work) => {
  try { await work(); } catch (e) { console.error(`step "${name}" failed: ${e.message}`); await browser.close(); process.exit(1); }
  console.log(`ok: ${name}`);
};
// the camera's frames form a stream: a track is named on its second agreeing face
const push = async () => {
  for (let i = 0; i < 2; i++) {
    const pushed = await fetch(`${BASE}/v1/cameras/entrance/frames`, {
      method: "POST", headers: { Authorization: `Bearer ${TERMINAL_KEY}` }, body: readFileSync(FRAME),
    });
    if (pushed.status !== 202) throw new Error(`push answered ${pushed.status}`);
    await new Promise((done) => setTimeout(done, 300));
  }
};
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  const glasses = await browser.newPage({ viewport: { width: 800, height: 480 } });
  page.setDefaultTimeout(15000);
  await step("a wrong key shows nothing", async () => {
    await page.goto(`${BASE}/console`);
    await page.fill("#key", "not-the-admin-key-000000");
    await page.click("#login-form button");
    await page.waitForSelector("#login-error:has-text('Not logged in')");
    if (await page.isVisible("#app")) throw new Error("the console is visible without the key");
  });
  await step("log in", async () => {
    await page.fill("#key", ADMIN_KEY);
    await page.click("#login-form button");
    await page.waitForSelector("#app:not([hidden])");
  });
  await step("enrol through the form", async () => {
    await page.click("button[data-tab=customers]");
    await page.fill("input[name=name]", "Browser Customer");
    await page.fill("input[name=consent]", "signed at the console");
    await page.setInputFiles("input[name=portrait]", PORTRAIT);
    await page.click("#enrol-form button");
    await page.waitForSelector("#enrol-result:has-text('Enrolled customer')");
    await page.waitForSelector("#customer-rows td:has-text('Browser Customer')");
    await page.click("#customer-rows button:has-text('View')");
    await page.waitForSelector("#customer-view:has-text('signed at the console')");
    await page.screenshot({ path: `${SHOTS}/customers.png` });
  });
  await step("move the threshold and save", async () => {
    await page.click("button[data-tab=threshold]");
    // drag the threshold line on the plot from where it is to 0.95 (x axis: 0.2 → 1 over 40 → 700 px)
    const plot = await page.locator("#cal-plot").boundingBox();
    const at = (score) => plot.x + 40 + (score - 0.2) / 0.8 * 660;
    const line = Number(await page.getAttribute("#threshold-line", "x1"));
    if (Math.abs(plot.x + line - at(0.93)) > 1) throw new Error(`the line is not at the current threshold: ${line}`);
    await page.mouse.move(at(0.93), plot.y + 120);
    await page.mouse.down();
    await page.mouse.move(at(0.94), plot.y + 120);
    await page.mouse.move(at(0.95), plot.y + 120);
    await page.mouse.up();
    await page.waitForSelector("#threshold-value:has-text('0.950')");
    await page.waitForSelector("#threshold-effect:has-text('At 0.950')");
    if (Math.abs(Number(await page.getAttribute("#threshold-line", "x1")) + plot.x - at(0.95)) > 1) throw new Error("the line did not move");
    await page.click("#threshold-form button");
    await page.waitForSelector("#threshold-result:has-text('Saved: threshold 0.95')");
    await page.waitForSelector("#audit-rows td:has-text('admin:')");
    await page.screenshot({ path: `${SHOTS}/threshold.png` });
  });
  await step("cameras", async () => {
    await page.click("button[data-tab=cameras]");
    await page.waitForSelector("#camera-rows td:has-text('entrance')");
    await page.waitForSelector("#terminal-rows td:has-text('glasses-1')");
    await page.screenshot({ path: `${SHOTS}/cameras.png` });
  });
  await step("the terminal page shows the card of a recognised customer", async () => {
    await glasses.goto(`${BASE}/terminal/glasses-1#key=${TERMINAL_KEY}`);
    await glasses.waitForSelector("#status:has-text('listening')");
    await push();
    await glasses.waitForSelector("#name:has-text('Browser Customer')");
    await glasses.screenshot({ path: `${SHOTS}/terminal.png` });
  });
  await step("the console's live page shows the recognition with its face crop and score", async () => {
    await page.click("button[data-tab=live]");
    const seen = page.locator("#live-cards .live", { hasText: "Browser Customer" });
    await seen.waitFor();
    if (!/score 0\.9\d\d/.test(await seen.innerText())) throw new Error(`no score: ${await seen.innerText()}`);
    if (!/track \d+/.test(await seen.innerText())) throw new Error(`no track: ${await seen.innerText()}`);
    await page.waitForFunction(() => document.querySelector("#live-cards .live img")?.naturalWidth > 0);
    await page.screenshot({ path: `${SHOTS}/live.png` });
  });
  await step("the preview is the terminal page itself", async () => {
    await page.click("button[data-tab=preview]");
    await page.waitForSelector("#preview-terminal option[value=glasses-1]", { state: "attached" });
    await page.frameLocator("#preview-frame").locator("#name", { hasText: "Browser Customer" }).waitFor();
    await page.screenshot({ path: `${SHOTS}/preview.png` });
  });
  await step("after a restart the terminal page and the live page reconnect by themselves", async () => {
    await page.click("button[data-tab=live]");
    console.log("restart the service");
    await glasses.waitForSelector("#status:has-text('reconnecting')");
    await glasses.waitForSelector("#status:has-text('listening')", { timeout: 40000 });
    await glasses.waitForSelector("#name:empty", { state: "attached" });
    await page.waitForSelector("#live-status:has-text('watching')", { timeout: 40000 });
    await push();
    await glasses.waitForSelector("#name:has-text('Browser Customer')");
    await page.locator("#live-cards .live", { hasText: "Browser Customer" }).nth(1).waitFor();
  });
  await step("find the customer and erase them", async () => {
    await page.click("button[data-tab=customers]");
    await page.fill("#query", "browser");
    await page.click("#search-form button");
    const found = page.locator("#customer-rows tr", { hasText: "Browser Customer" });
    await found.waitFor();
    page.once("dialog", (dialog) => dialog.accept());
    await found.locator("button", { hasText: "Delete" }).click();
    await found.waitFor({ state: "detached" });
  });
  await step("the audit page shows the erasure, by id and by whom", async () => {
    await page.click("button[data-tab=audit]");
    const erased = page.locator("#audit-log-rows tr", { hasText: "erase" });
    await erased.first().waitFor();
    const text = await erased.first().innerText();
    if (!/admin:/.test(text) || !/customer \d+/.test(text)) throw new Error(`unexpected audit row: ${text}`);
    if (/Browser Customer/.test(await page.locator("#audit-log-rows").innerText())) throw new Error("the audit log shows a name");
    const login = await page.locator("#audit-log-rows tr", { hasText: "login" }).first().innerText();
    if (!/admin:/.test(login) || !/127\.0\.0\.1/.test(login)) throw new Error(`unexpected login row: ${login}`);
    await page.screenshot({ path: `${SHOTS}/audit.png` });
  });
} finally {
  await browser.close();
}
