#!/usr/bin/env node
/**
 * Browser test: the `pancreas-ai` mode on a study that also holds non-image series (issue 20,
 * item 5) — an RTSTRUCT, a Key Object Selection, a Grayscale Softcopy Presentation State and a
 * Basic Text SR, all numbered before the CT so they come first in OHIF's series order.
 *
 * Input: a JSON file (argument 1, written by tests/ohif_extension/test_e2e_non_image.py) with
 * the Orthanc URL, credentials, the study (UIDs, result.json) as received — CT plus those
 * series — and the node's SEG and SR files. Two states of the study, each opened in the mode:
 * as received (no AI result yet), then with the SEG and SR stored (this script posts them) and
 * the page reloaded. Each time: the CT is hung in the viewport and rendered (its image on the
 * canvas, lit pixels in the screenshot) and, after a quiet window, neither a page error nor
 * OHIF's "Something went wrong" toast; processed: the panel shows the result and the SEG is
 * loaded; last, the RTSTRUCT opened by a double-click on its thumbnail shows its ROI, again
 * without errors. Screenshots, console and checks go to the folder given as argument 2; exit
 * status 0 when every check passes.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { openSession } from "./session.mjs";

const { cfg, artifacts, page, log, check, finish } = await openSession("e2e/non-image.mjs");
/** How long the page must stay free of errors after the CT has rendered. */
const QUIET_MS = Number(process.env.E2E_QUIET_MS ?? 2500);
const pageErrors = () => log.filter((l) => l.startsWith("[pageerror]"));
const somethingWentWrong = () => page.getByText(/Something went wrong/i).count();
let failed = false;

async function storeInOrthanc(path) {
  const auth = Buffer.from(`${cfg.username}:${cfg.password}`).toString("base64");
  const response = await fetch(`${cfg.base_url}/instances`, {
    method: "POST",
    headers: { Authorization: `Basic ${auth}`, "Content-Type": "application/dicom" },
    body: readFileSync(path),
  });
  if (!response.ok) throw new Error(`storing ${path}: HTTP ${response.status}`);
}

/** Open the mode on the study and check what every state of it must show. */
async function openStudy(phase, expectedSeries) {
  const series = await (
    await page.waitForFunction((n) => {
      const ds = window.services?.displaySetService?.getActiveDisplaySets?.() ?? [];
      const uids = new Set(ds.map((d) => d.SeriesInstanceUID));
      return uids.size >= n ? ds.map((d) => ({ modality: d.Modality, sopClass: d.SOPClassUID, series: d.SeriesInstanceUID })) : false;
    }, expectedSeries)
  ).jsonValue();
  console.log(`[${phase}] display sets: ${series.map((s) => s.modality).join(", ")}`);

  // The CT is in the main viewport and rendered, whichever series came first.
  const shown = await (
    await page.waitForFunction(
      (seriesUid) => {
        const viewport = window.cornerstone?.getEnabledElements?.()[0]?.viewport;
        const imageId = viewport?.getCurrentImageId?.();
        if (!imageId || !imageId.includes(seriesUid)) return false;
        return viewport.getImageData?.() ? { viewportId: viewport.id, type: viewport.type } : false;
      },
      cfg.series_uid,
      { polling: 200 },
    )
  ).jsonValue();
  check(`[${phase}] the CT is shown in the main viewport`, true, `${shown.type} ${shown.viewportId}`);
  return series;
}

/** After a quiet window (errors of the other series' handlers come after the first render). */
async function checkHealthy(phase) {
  await page.waitForTimeout(QUIET_MS);
  const rect = await page.evaluate(() => {
    const r = window.cornerstone.getEnabledElements()[0].viewport.canvas.getBoundingClientRect();
    return { x: r.left, y: r.top, width: r.width, height: r.height };
  });
  const shotPath = join(artifacts, `viewer-${phase}.png`);
  await page.screenshot({ path: join(artifacts, `page-${phase}.png`) });
  await page.screenshot({ path: shotPath, clip: rect });
  const shot = readFileSync(shotPath).toString("base64");
  const bright = await page.evaluate(async (shot) => {
    const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${shot}`)).blob());
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    // The middle half of the viewport: the phantom's body, not the black surround.
    const [w, h] = [bitmap.width, bitmap.height];
    const data = ctx.getImageData(Math.round(w / 4), Math.round(h / 4), Math.round(w / 2), Math.round(h / 2)).data;
    let lit = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
    return lit / (data.length / 4);
  }, shot);
  check(`[${phase}] the CT viewport is not black`, bright > 0.2, `${(bright * 100).toFixed(0)} % lit pixels in the middle half`);
  check(`[${phase}] no 'Something went wrong' toast`, (await somethingWentWrong()) === 0);
  check(`[${phase}] no uncaught errors in the page`, pageErrors().length === 0, pageErrors().join(" | "));
}

try {
  // --- as received: CT + RTSTRUCT, KO, PR, Basic Text SR; no AI result yet ------------------
  await page.goto(`${cfg.base_url}/ohif/pancreas-ai?StudyInstanceUIDs=${cfg.study_uid}`);
  let series = await openStudy("received", cfg.received_series);
  await page.locator('[data-testid="pancreas-ai-panel"][data-state="none"]').waitFor();
  check("[received] the panel says there is no result yet", true);
  await checkHealthy("received");
  check("[received] the RTSTRUCT is listed (OHIF's RT SOP class handler)", series.some((s) => s.modality === "RTSTRUCT"));

  // --- processed: the node's SEG and SR stored, the viewer reloaded --------------------------
  for (const path of cfg.ai_files) await storeInOrthanc(path);
  await page.reload();
  series = await openStudy("processed", cfg.received_series + cfg.ai_files.length);
  const panel = page.locator('[data-testid="pancreas-ai-panel"][data-state="ready"]');
  await panel.waitFor();
  const categoryText = { resectable: "Resectable", borderline: "Borderline resectable", "locally advanced": "Locally advanced" };
  const category = (await page.getByTestId("pancreas-ai-category").innerText()).trim();
  check("[processed] the PancreasAI panel shows the result", category === categoryText[cfg.result.category.label], category);
  const segs = await (
    await page.waitForFunction((segUid) => {
      const all = window.services?.segmentationService?.getSegmentations?.() ?? [];
      const ds = window.services?.displaySetService;
      const ours = all.find((s) => ds?.getDisplaySetByUID?.(s.segmentationId)?.SOPInstanceUID === segUid);
      return ours ? all.length : false;
    }, cfg.seg_sop_uid)
  ).jsonValue();
  check("[processed] the node's SEG is loaded over the CT", segs >= 1, `${segs} segmentation(s)`);
  await checkHealthy("processed");
  check("[processed] the RTSTRUCT is still listed", series.some((s) => s.modality === "RTSTRUCT"));

  // --- the RTSTRUCT opens on demand: double-click its thumbnail -----------------------------
  const rt = series.find((s) => s.modality === "RTSTRUCT");
  await page.locator('[data-cy="seriesList-btn"]').first().click(); // the thumbnails tab
  await page.getByText("Planning structures").first().dblclick();
  const contours = await (
    await page.waitForFunction((rtSeries) => {
      const ds = window.services?.displaySetService;
      const all = window.services?.segmentationService?.getSegmentations?.() ?? [];
      const found = all.find((s) => ds?.getDisplaySetByUID?.(s.segmentationId)?.SeriesInstanceUID === rtSeries);
      return found ? Object.values(found.segments ?? {}).map((x) => x?.label) : false;
    }, rt.series)
  ).jsonValue();
  check("[rtstruct] the RTSTRUCT's ROI is shown as a segmentation", contours.includes("GTV"), contours.join(", "));
  await page.waitForTimeout(QUIET_MS);
  await page.screenshot({ path: join(artifacts, "page-rtstruct.png") });
  check("[rtstruct] no 'Something went wrong' toast", (await somethingWentWrong()) === 0);
  check("[rtstruct] no uncaught errors in the page", pageErrors().length === 0, pageErrors().join(" | "));
} catch (error) {
  failed = true;
  console.error(`e2e failed: ${error instanceof Error ? error.message : error}`);
  console.error(`page errors: ${pageErrors().join(" | ") || "none"}`);
  await page.screenshot({ path: join(artifacts, "failure.png") }).catch(() => undefined);
} finally {
  await finish(failed);
}
