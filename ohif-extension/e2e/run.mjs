#!/usr/bin/env node
/**
 * End-to-end browser test of the PancreasAI OHIF extension against a real Orthanc.
 *
 * Input: a JSON file (argument 1, written by tests/ohif_extension/test_e2e.py) with the
 * Orthanc URL, credentials, the processed phantom study (UIDs, tumor centre in LPS mm) and its
 * result.json. Drives Debian's chromium through playwright-core, headless; waits on
 * data-testid selectors and on the viewer's own state, never on fixed sleeps. Screenshots go
 * to the folder given as argument 2. Exit status 0 when every check passes; the checks run in
 * order and the first failure stops the run with its message.
 */
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [configPath, artifacts] = process.argv.slice(2);
if (!configPath || !artifacts) {
  console.error("usage: node e2e/run.mjs STUDY.json ARTIFACT_DIR");
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(configPath, "utf8"));
mkdirSync(artifacts, { recursive: true });
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 60000);
const result = cfg.result;
const log = [];
const checks = [];

function check(name, ok, detail = "") {
  checks.push({ name, ok, detail });
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
  if (!ok) throw new Error(`${name}: ${detail}`);
}

function near(a, b, tol) {
  return Math.abs(Number(a) - Number(b)) <= tol;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
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
page.setDefaultTimeout(TIMEOUT);
page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
page.on("pageerror", (e) => log.push(`[pageerror] ${e.message}`));
let failed = false;

/** Wait until `center` (LPS mm) is on the displayed slice; its page position and the canvas rect. */
function waitOnSlice(center) {
  return page.waitForFunction(
    (center) => {
      const cs = window.cornerstone;
      const element = cs?.getEnabledElements?.()[0];
      const viewport = element?.viewport;
      if (!viewport) return false;
      const camera = viewport.getCamera();
      const n = camera.viewPlaneNormal;
      const f = camera.focalPoint;
      const distance = Math.abs((center[0] - f[0]) * n[0] + (center[1] - f[1]) * n[1] + (center[2] - f[2]) * n[2]);
      if (distance > 3.1) return false;
      const [x, y] = viewport.worldToCanvas(center);
      const canvas = viewport.canvas;
      const rect = canvas.getBoundingClientRect();
      const scale = rect.width / canvas.clientWidth || 1;
      return { x: rect.left + x * scale, y: rect.top + y * scale, rect: { left: rect.left, top: rect.top, width: rect.width, height: rect.height }, distance };
    },
    center,
    { polling: 200 },
  );
}

/**
 * Colours of a screenshot (what the radiologist sees, decoded by the browser) around (cx, cy)
 * and in the bottom-left corner: the fraction of red and of yellow pixels, the mean RGB.
 */
async function sampleShot(path, cx, cy) {
  const shot = readFileSync(path).toString("base64");
  return page.evaluate(
    async ({ shot, cx, cy }) => {
      const blob = await (await fetch(`data:image/png;base64,${shot}`)).blob();
      const bitmap = await createImageBitmap(blob);
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0);
      const sample = (x0, y0, r) => {
        const data = ctx.getImageData(x0 - r, y0 - r, 2 * r + 1, 2 * r + 1).data;
        let red = 0;
        let yellow = 0;
        let blue = 0;
        const sum = [0, 0, 0];
        for (let i = 0; i < data.length; i += 4) {
          const [r_, g, b] = [data[i], data[i + 1], data[i + 2]];
          if (r_ > 120 && r_ > g + 50 && r_ > b + 50) red++;
          if (r_ > 120 && g > 100 && r_ > b + 60 && g > b + 50) yellow++;
          if (b > 110 && b > r_ + 50 && b > g + 25) blue++;
          sum[0] += r_;
          sum[1] += g;
          sum[2] += b;
        }
        const n = data.length / 4;
        return { red: red / n, yellow: yellow / n, blue: blue / n, rgb: sum.map((v) => Math.round(v / n)) };
      };
      const at = sample(cx, cy, 4);
      const corner = sample(12, bitmap.height - 12, 4);
      // The bottom-left corner holds OHIF's (blue) viewport icon: blue is looked for bottom centre.
      const edge = sample(Math.round(bitmap.width / 2), bitmap.height - 12, 4);
      return { ...at, cornerRed: corner.red, cornerYellow: corner.yellow, edgeBlue: edge.blue };
    },
    { shot, cx, cy },
  );
}

try {
  // --- viewer: the processed study in the pancreas-ai mode --------------------------------
  const viewer = `${cfg.base_url}/ohif/pancreas-ai?StudyInstanceUIDs=${cfg.study_uid}`;
  await page.goto(viewer);
  const panel = page.locator('[data-testid="pancreas-ai-panel"][data-state="ready"]');
  await panel.waitFor();
  check("panel is shown in the mode's layout", true);

  const text = async (id) => (await page.getByTestId(id).innerText()).trim();
  const categoryText = { resectable: "Resectable", borderline: "Borderline resectable", "locally advanced": "Locally advanced" };
  check("category", (await text("pancreas-ai-category")) === categoryText[result.category.label], await text("pancreas-ai-category"));
  for (const [i, label] of ["resectable", "borderline", "locally advanced"].entries()) {
    const bar = page.getByTestId(`pancreas-ai-prob-${label.replace(" ", "-")}`);
    const value = Number(await bar.getAttribute("data-value"));
    check(`probability ${label}`, near(value, result.category.probabilities[i] * 100, 0.051), `${value} %`);
  }
  check("uncertainty", near(await page.getByTestId("pancreas-ai-uncertainty").getAttribute("data-value"), result.category.uncertainty, 1e-9));
  check("rule category", (await text("pancreas-ai-rule-category")) === categoryText[result.rule_category]);
  const warning = page.getByTestId("pancreas-ai-disagreement");
  check("disagreement warning", result.disagreement === (await warning.count()) > 0);
  for (const [vessel, angle] of Object.entries(result.measurements.contact_deg)) {
    const row = page.getByTestId(`pancreas-ai-vessel-${vessel}`);
    check(`contact angle ${vessel}`, near(await row.getAttribute("data-angle"), angle, 1e-6), `${angle}°`);
  }
  const value = async (id) => Number(await page.getByTestId(id).getAttribute("data-value"));
  const shown = async (id) => parseFloat(await text(id));
  const volume = await value("pancreas-ai-tumor-volume");
  check("tumor volume", near(volume, result.measurements.tumor_volume_ml, 1e-9), `${volume} ml`);
  check("tumor volume as shown", near(await shown("pancreas-ai-tumor-volume"), volume, 0.05 + 1e-9));
  const diameter = await value("pancreas-ai-tumor-diameter");
  check("tumor diameter", near(diameter, result.measurements.tumor_max_diameter_mm, 1e-9), `${diameter} mm`);
  check("tumor diameter as shown", near(await shown("pancreas-ai-tumor-diameter"), diameter, 0.05 + 1e-9));
  check("clinical used", (await text("pancreas-ai-clinical-used")) === result.clinical.used.join(", "));
  check("clinical missing", (await text("pancreas-ai-clinical-missing")) === result.clinical.missing.join(", "));
  check("clinical imputed", (await text("pancreas-ai-clinical-imputed")) === result.clinical.imputed.join(", "));
  check("model version", (await text("pancreas-ai-model")).startsWith(`${result.bundle.name} ${result.bundle.version}`));
  check("notice", (await text("pancreas-ai-notice")) === result.notice);
  if (result.detection) {
    const d = result.detection;
    const n = d.lesions.length;
    const lesions = n ? `, ${n} lesion${n !== 1 ? "s" : ""}` : "";
    const expected = `PDAC likelihood ${d.pdac_likelihood.toFixed(2)} (threshold ${d.threshold.toFixed(2)}): ${d.detected ? "detected" : "not detected"}${lesions}`;
    check("PDAC detection", (await text("pancreas-ai-detection")) === expected, await text("pancreas-ai-detection"));
  }
  if (result.source) {
    const analysed = `series version ${result.source.series_version}, ${result.source.instance_count} instances`;
    check("analysed series", (await text("pancreas-ai-analysed")) === analysed, await text("pancreas-ai-analysed"));
  }

  // React sharing: the panel content lives in its own root (a second React), the host's tree
  // only holds the hook-free host element; no "Invalid hook call" from either React.
  const roots = await page.evaluate(() => {
    const host = document.querySelector('[data-testid="pancreas-ai-panel-host"]');
    const app = document.getElementById("root");
    const containerKey = (el) => (el ? Object.keys(el).find((k) => k.startsWith("__reactContainer$")) : undefined);
    const fiberKey = (el) => (el ? Object.keys(el).find((k) => k.startsWith("__reactFiber$")) : undefined);
    return { host: containerKey(host), app: containerKey(app), hostFiber: fiberKey(host) };
  });
  check(
    "panel rendered by its own React root inside the host's tree",
    Boolean(roots.host && roots.app && roots.hostFiber && roots.host !== roots.app && roots.hostFiber.slice(13) === roots.app.slice(17)),
    JSON.stringify(roots),
  );
  check("no invalid hook call", !log.some((l) => /Invalid hook call|Minified React error #321/.test(l)));

  // --- SEG overlay where the tumor is ------------------------------------------------------
  await page.waitForFunction(() => {
    const seg = window.services?.segmentationService;
    return Boolean(seg && seg.getSegmentations().length > 0);
  });
  await page.getByTestId("pancreas-ai-tumor").click();
  await page.waitForFunction(() => document.querySelector('[data-testid="pancreas-ai-tumor"].pai-selected') !== null);
  // Wait until the tumor centre is on the displayed slice and the viewport has rendered it.
  const probe = await waitOnSlice(cfg.tumor_center_lps);
  const where = await probe.jsonValue();
  // Let the highlight animation settle before sampling pixels: wait for two animation frames
  // with the camera unchanged.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const viewportShot = join(artifacts, "viewer-tumor.png");
  await page.screenshot({ path: join(artifacts, "viewer.png") });
  const clip = { x: where.rect.left, y: where.rect.top, width: where.rect.width, height: where.rect.height };
  await page.screenshot({ path: viewportShot, clip });
  // Pixel check on the screenshot itself (what the radiologist sees), decoded by the browser.
  const cx = Math.round(where.x - clip.x);
  const cy = Math.round(where.y - clip.y);
  const { red: atTumor, cornerRed: corner } = await sampleShot(viewportShot, cx, cy);
  check("SEG overlay is red (tumor colour) at the tumor centre", atTumor > 0.5, `${(atTumor * 100).toFixed(0)} % red at (${cx}, ${cy}); corner ${(corner * 100).toFixed(0)} %`);
  check("no overlay in the image corner", corner < 0.1);

  // --- vessel row highlights its segment ---------------------------------------------------
  await page.getByTestId("pancreas-ai-vessel-SMV").click();
  await page.waitForFunction(() => {
    const row = document.querySelector('[data-testid="pancreas-ai-vessel-SMV"]');
    return row?.getAttribute("aria-selected") === "true";
  });
  const active = await page.waitForFunction(() => {
    const seg = window.services?.segmentationService;
    const s = seg?.getSegmentations()[0];
    const active = s ? Object.values(s.segments ?? {}).find((x) => x?.active) : undefined;
    return active ? { index: active.segmentIndex, label: active.label } : false;
  });
  const activeSegment = await active.jsonValue();
  check("clicking a vessel row makes its segment active", /mesenteric vein|SMV|smv/i.test(String(activeSegment.label)), JSON.stringify(activeSegment));
  await page.screenshot({ path: join(artifacts, "viewer-smv.png") });

  // --- the detector's lesion SEG: not hung by default, shown at the lesion on request ---------
  if (result.detection?.lesions?.length && cfg.detection_seg_sop_uid) {
    const lesionCenter = result.detection.lesions[0].centre_lps_mm;
    const segState = (sops) =>
      page.evaluate(({ anatomy, lesion }) => {
        const { displaySetService, segmentationService, viewportGridService } = window.services;
        const bySop = (sop) => displaySetService.getActiveDisplaySets().find((d) => d.Modality === "SEG" && d.instances?.some((i) => i.SOPInstanceUID === sop));
        const viewportId = viewportGridService.getState().activeViewportId;
        const shown = (ds) => Boolean(ds && segmentationService.getSegmentationRepresentations(viewportId, { segmentationId: ds.displaySetInstanceUID }).some((r) => r.viewportId === undefined || r.viewportId === viewportId));
        const anatomyDs = bySop(anatomy);
        const lesionDs = bySop(lesion);
        return {
          anatomy: anatomyDs?.displaySetInstanceUID,
          lesion: lesionDs?.displaySetInstanceUID,
          segmentations: segmentationService.getSegmentations().map((s) => s.segmentationId),
          anatomyShown: shown(anatomyDs),
          lesionShown: shown(lesionDs),
          lesionSegments: lesionDs ? Object.keys(segmentationService.getSegmentation(lesionDs.displaySetInstanceUID)?.segments ?? {}).filter((k) => k !== "0") : [],
        };
      }, sops);
    const sops = { anatomy: cfg.seg_sop_uid, lesion: cfg.detection_seg_sop_uid };
    const initial = await segState(sops);
    check(
      "the anatomical SEG is hung over the CT, the lesion SEG only listed",
      Boolean(initial.anatomy && initial.lesion) && initial.anatomyShown && !initial.segmentations.includes(initial.lesion),
      JSON.stringify(initial),
    );
    const button = page.getByTestId("pancreas-ai-show-lesions");
    check("PDAC detection row offers the lesions", (await button.getAttribute("data-segmentation-id")) === initial.lesion, (await button.innerText()).trim());
    await button.click();
    await page.waitForFunction(() => /^(shown|failed)$/.test(document.querySelector('[data-testid="pancreas-ai-show-lesions"]')?.getAttribute("data-state") ?? ""));
    check("show lesions answers", (await button.getAttribute("data-state")) === "shown", `${(await button.innerText()).trim()} (lesion ${await button.getAttribute("data-lesion")})`);
    const lesionWhere = await (await waitOnSlice(lesionCenter)).jsonValue();
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const lesionShot = join(artifacts, "viewer-lesion.png");
    const lesionClip = { x: lesionWhere.rect.left, y: lesionWhere.rect.top, width: lesionWhere.rect.width, height: lesionWhere.rect.height };
    await page.screenshot({ path: lesionShot, clip: lesionClip });
    const lx = Math.round(lesionWhere.x - lesionClip.x);
    const ly = Math.round(lesionWhere.y - lesionClip.y);
    const atLesion = await sampleShot(lesionShot, lx, ly);
    // The lesion colour (yellow, 255/220/0) over the tumor's red: green rises with red, blue stays low.
    check(
      "lesion SEG overlay is yellow (lesion colour) at the detected lesion",
      atLesion.yellow > 0.5,
      `${(atLesion.yellow * 100).toFixed(0)} % yellow at (${lx}, ${ly}), mean rgb ${atLesion.rgb.join("/")}; corner ${(atLesion.cornerYellow * 100).toFixed(0)} %`,
    );
    check("no lesion overlay in the image corner", atLesion.cornerYellow < 0.1);
    const after = await segState(sops);
    check(
      "the lesion SEG is a second overlay in the viewport, the anatomical SEG stays",
      after.lesionShown && after.anatomyShown && after.segmentations.includes(after.lesion) && after.lesionSegments.length === result.detection.lesions.length,
      JSON.stringify(after),
    );
  }
  // --- lymph nodes (result 1.6): N estimate, node list, jump to each node, node SEG overlay ----
  if (result.lymph_nodes) {
    const ln = result.lymph_nodes;
    const count = ln.nodes.length;
    const suspicious = ln.nodes.filter((n) => n.suspicious).length;
    const expectedN = `${ln.n_estimate} (probability ${ln.n_positive_probability.toFixed(2)}, threshold ${ln.threshold.toFixed(2)}): ${suspicious} suspicious of ${count} node${count !== 1 ? "s" : ""}`;
    check("N estimate", (await text("pancreas-ai-n-estimate")) === expectedN, await text("pancreas-ai-n-estimate"));
    for (const node of ln.nodes) {
      const row = page.getByTestId(`pancreas-ai-node-${node.node_id}`);
      const station = node.station === null ? "—" : `JPS ${node.station}`;
      check(`node ${node.node_id} station`, (await row.getAttribute("data-station")) === station, station);
      check(`node ${node.node_id} short axis`, (await text(`pancreas-ai-node-${node.node_id}-short-axis`)) === `${node.short_axis_mm.toFixed(1)} mm`);
      check(`node ${node.node_id} probability`, (await text(`pancreas-ai-node-${node.node_id}-probability`)).startsWith(node.probability.toFixed(2)));
      check(`node ${node.node_id} suspicious marker`, (await row.getAttribute("data-suspicious")) === String(node.suspicious));
    }
    const nodeSop = cfg.lymph_node_seg_sop_uid;
    const nodeSegState = () =>
      page.evaluate((sop) => {
        const { displaySetService, segmentationService, viewportGridService } = window.services;
        const ds = displaySetService.getActiveDisplaySets().find((d) => d.Modality === "SEG" && d.instances?.some((i) => i.SOPInstanceUID === sop));
        const viewportId = viewportGridService.getState().activeViewportId;
        const id = ds?.displaySetInstanceUID;
        return {
          id,
          loaded: Boolean(id && segmentationService.getSegmentations().some((s) => s.segmentationId === id)),
          shown: Boolean(id && segmentationService.getSegmentationRepresentations(viewportId, { segmentationId: id }).length > 0),
          segments: id ? Object.keys(segmentationService.getSegmentation(id)?.segments ?? {}).filter((k) => k !== "0").length : 0,
        };
      }, nodeSop);
    if (nodeSop) {
      const before = await nodeSegState();
      check("the node SEG is listed, not hung by default", Boolean(before.id) && !before.loaded, JSON.stringify(before));
      check("the node list offers the node SEG", (await page.getByTestId("pancreas-ai-nodes").getAttribute("data-segmentation-id")) === before.id);
    }
    const section = page.getByTestId("pancreas-ai-nodes");
    // Each node in turn, the last first (OHIF shows a SEG it loads at its first segment, node 1:
    // only the panel's jump brings node 2's slice): the row is selected, the viewport shows the
    // node's slice and, with the node SEG, the node's colour at its centre (red suspicious, blue
    // not: inference/_seg_lymph_nodes.py).
    for (const node of [...ln.nodes].reverse()) {
      await page.getByTestId(`pancreas-ai-node-${node.node_id}`).click();
      await page.waitForFunction(
        (id) => {
          const el = document.querySelector('[data-testid="pancreas-ai-nodes"]');
          return el?.getAttribute("data-node") === String(id) && /^(shown|failed)$/.test(el.getAttribute("data-state") ?? "");
        },
        node.node_id,
      );
      check(`node ${node.node_id}: the viewport jumps to it`, (await section.getAttribute("data-state")) === "shown", `segment ${await section.getAttribute("data-segment")}`);
      const nodeWhere = await (await waitOnSlice(node.centre_lps_mm)).jsonValue();
      check(`node ${node.node_id}: its centre is on the displayed slice`, nodeWhere.distance <= 3.1, `${nodeWhere.distance.toFixed(2)} mm`);
      if (!nodeSop) continue;
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      const shot = join(artifacts, node.suspicious ? "viewer-node-suspicious.png" : "viewer-nodes.png");
      const clip = { x: nodeWhere.rect.left, y: nodeWhere.rect.top, width: nodeWhere.rect.width, height: nodeWhere.rect.height };
      await page.screenshot({ path: shot, clip });
      const nx = Math.round(nodeWhere.x - clip.x);
      const ny = Math.round(nodeWhere.y - clip.y);
      const at = await sampleShot(shot, nx, ny);
      const colour = node.suspicious ? "red" : "blue";
      check(
        `node SEG overlay is ${colour} at node ${node.node_id}`,
        at[colour] > 0.5,
        `${(at[colour] * 100).toFixed(0)} % ${colour} at (${nx}, ${ny}), mean rgb ${at.rgb.join("/")}; corner ${(at.cornerRed * 100).toFixed(0)} % red, bottom edge ${(at.edgeBlue * 100).toFixed(0)} % blue`,
      );
      check(`no node overlay at the image's edge (node ${node.node_id})`, at.edgeBlue < 0.1 && at.cornerRed < 0.1);
    }
    if (nodeSop) {
      const after = await nodeSegState();
      check("the node SEG is a further overlay in the viewport, one segment per node", after.loaded && after.shown && after.segments === count, JSON.stringify(after));
    } else {
      await page.screenshot({ path: join(artifacts, "viewer-nodes.png") });
    }
  }
  // --- survival prognosis (result 1.7): risk badge, death by 1/2/3 years, inputs, notice -------
  if (result.prognosis) {
    const pg = result.prognosis;
    const section = page.getByTestId("pancreas-ai-prognosis");
    await section.scrollIntoViewIfNeeded();
    const badge = page.getByTestId("pancreas-ai-risk-group");
    const badgeText = pg.risk_group === "high" ? "High risk" : "Low risk";
    check("prognosis risk group", (await badge.getAttribute("data-risk")) === pg.risk_group && (await text("pancreas-ai-risk-group")) === badgeText, await text("pancreas-ai-risk-group"));
    const years = `${pg.risk_horizon_years} year${pg.risk_horizon_years !== 1 ? "s" : ""}`;
    const expectedLine = `${pg.risk_group} risk (death by 1/2/3 years ${pg.death_probability.map((v) => v.toFixed(2)).join("/")}; cut-off ${pg.risk_cutoff.toFixed(2)} at ${years})`;
    check("prognosis line", (await text("pancreas-ai-prognosis-text")) === expectedLine, await text("pancreas-ai-prognosis-text"));
    for (const [i, p] of pg.death_probability.entries()) {
      const id = `pancreas-ai-death-${i + 1}y`;
      check(`death probability by ${i + 1} year${i ? "s" : ""}`, near(await value(id), p, 1e-9) && (await text(id)).endsWith(p.toFixed(2)), await text(id));
    }
    check("prognosis 3-year probability shown", (await text("pancreas-ai-death-3y")).includes(pg.death_probability[2].toFixed(2)));
    const source = { node: "node", "lymph-node-model": "lymph-node model", registry: "registry" };
    const tnm = ["T", "N", "M"]
      .filter((k) => pg.staging[k])
      .map((k) => (pg.staging[k].value === null ? `${k} missing` : `${pg.staging[k].value} (${source[pg.staging[k].source]})`))
      .join(", ");
    check("prognosis TNM inputs with their source", (await text("pancreas-ai-prognosis-tnm")) === (tnm || "—"), await text("pancreas-ai-prognosis-tnm"));
    check("prognosis inputs missing", (await text("pancreas-ai-prognosis-missing")) === (pg.inputs_missing.join(", ") || "—"));
    check("prognosis model version", (await text("pancreas-ai-prognosis-model")) === pg.model_version);
    check("prognosis is investigational", (await text("pancreas-ai-prognosis-notice")) === "Investigational, not for clinical use");
    await page.screenshot({ path: join(artifacts, "viewer-prognosis.png") });
  }
  const pageErrors = log.filter((l) => l.startsWith("[pageerror]"));
  check("no uncaught errors in the page", pageErrors.length === 0, pageErrors.join(" | "));

  // --- worklist -------------------------------------------------------------------------------
  await page.goto(`${cfg.base_url}/ohif/pancreas-ai-worklist`);
  await page.locator('[data-testid="worklist-table"][data-state="ready"]').waitFor();
  const row = page.locator(`[data-testid="worklist-row"][data-study-uid="${cfg.study_uid}"]`);
  await row.waitFor();
  check("worklist lists the study", true);
  check("worklist shows the AI category", (await row.getAttribute("data-category")) === result.category.label);
  await page.getByTestId("worklist-filter-category").selectOption("locally advanced");
  await row.waitFor({ state: result.category.label === "locally advanced" ? "visible" : "detached" });
  await page.getByTestId("worklist-filter-category").selectOption("all");
  await row.waitFor();
  await page.getByTestId("worklist-sort-category").click();
  if (result.lymph_nodes) {
    const ln = result.lymph_nodes;
    const cell = row.getByTestId("worklist-n");
    check("worklist shows the N estimate", (await cell.getAttribute("data-n")) === ln.n_estimate && (await cell.innerText()).trim() === `${ln.n_estimate} ${ln.n_positive_probability.toFixed(2)}`, (await cell.innerText()).trim());
    const other = ln.n_estimate === "N+" ? "N0" : "N+";
    await page.getByTestId("worklist-filter-n").selectOption(other);
    await row.waitFor({ state: "detached" });
    await page.getByTestId("worklist-filter-n").selectOption(ln.n_estimate);
    await row.waitFor();
    check("worklist filters by the N estimate", true);
    await page.getByTestId("worklist-filter-n").selectOption("all");
    await page.getByTestId("worklist-sort-n").click();
    await row.waitFor();
    check("worklist sorts by N", (await page.getByTestId("worklist-sort-n").innerText()).includes("▲"));
  }
  if (result.prognosis) {
    const pg = result.prognosis;
    const cell = row.getByTestId("worklist-risk");
    const expected = `${pg.risk_group} ${pg.death_probability[2].toFixed(2)}`;
    check("worklist shows the risk group", (await cell.getAttribute("data-risk")) === pg.risk_group && (await cell.innerText()).trim() === expected, (await cell.innerText()).trim());
    await page.getByTestId("worklist-filter-risk").selectOption(pg.risk_group === "high" ? "low" : "high");
    await row.waitFor({ state: "detached" });
    await page.getByTestId("worklist-filter-risk").selectOption(pg.risk_group);
    await row.waitFor();
    check("worklist filters by the risk group", true);
    await page.getByTestId("worklist-filter-risk").selectOption("all");
    await page.getByTestId("worklist-sort-risk").click();
    await row.waitFor();
    check("worklist sorts by risk", (await page.getByTestId("worklist-sort-risk").innerText()).includes("▲"));
  }
  await page.screenshot({ path: join(artifacts, "worklist.png") });
  const href = await row.getByTestId("worklist-open").getAttribute("href");
  check("worklist opens the case in the viewer", href === `/ohif/pancreas-ai?StudyInstanceUIDs=${encodeURIComponent(cfg.study_uid)}`, href ?? "");
} catch (error) {
  failed = true;
  console.error(`e2e failed: ${error instanceof Error ? error.message : error}`);
  await page.screenshot({ path: join(artifacts, "failure.png") }).catch(() => undefined);
} finally {
  writeFileSync(join(artifacts, "browser-console.log"), log.join("\n") + "\n");
  writeFileSync(join(artifacts, "checks.json"), JSON.stringify(checks, null, 2));
  await browser.close();
}
process.exit(failed ? 1 : 0);
