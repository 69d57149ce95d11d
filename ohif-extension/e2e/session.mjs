/**
 * What every browser test script shares: its arguments (STUDY.json, ARTIFACT_DIR), Debian's
 * chromium driven by playwright-core with Orthanc's credentials, the browser console kept,
 * named checks, and the artifacts written at the end (browser-console.log, checks.json).
 */
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

/** Parse the arguments, start chromium and open a page; `usage` names the script. */
export async function openSession(usage) {
  const [configPath, artifacts] = process.argv.slice(2);
  if (!configPath || !artifacts) {
    console.error(`usage: node ${usage} STUDY.json ARTIFACT_DIR`);
    process.exit(2);
  }
  const cfg = JSON.parse(readFileSync(configPath, "utf8"));
  mkdirSync(artifacts, { recursive: true });
  const timeout = Number(process.env.E2E_TIMEOUT_MS ?? 60000);
  const log = [];
  const checks = [];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const context = await browser.newContext({
    viewport: { width: 1600, height: 1000 },
    httpCredentials: { username: cfg.username, password: cfg.password },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log.push(`[pageerror] ${e.message}`));

  /** Record a named check; a failed one stops the script (the caller's catch). */
  function check(name, ok, detail = "") {
    checks.push({ name, ok, detail });
    console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
    if (!ok) throw new Error(`${name}: ${detail}`);
  }

  /** Write the console and the checks, close the browser and exit (1 when `failed`). */
  async function finish(failed) {
    writeFileSync(join(artifacts, "browser-console.log"), log.join("\n") + "\n");
    writeFileSync(join(artifacts, "checks.json"), JSON.stringify(checks, null, 2));
    await browser.close();
    process.exit(failed ? 1 : 0);
  }

  return { cfg, artifacts, timeout, page, context, log, checks, check, finish };
}
