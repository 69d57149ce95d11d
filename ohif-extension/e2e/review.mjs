#!/usr/bin/env node
/**
 * Browser test of the radiologist's review and the tumor board (issue 26, item 3) against a
 * real Orthanc with the PancreasAI plugin (tests/ohif_extension/test_e2e_review.py sets it up).
 *
 * Viewer: Agree, then Override (empty form refused, then category + reason) — each checked in
 * the panel and through the API; "Correct segmentation": OHIF's brush on the AI SEG, a mouse
 * drag on the CT, "Save correction" with a reason — the plugin answers 202, the panel shows the
 * correction pending and, once the node (played by the pytest) has written it, the new SEG's
 * UID. What was painted (slice, stroke in LPS mm, segment, brush reach) goes to painted.json
 * for the pytest's check of the stored label map against the AI SEG.
 * Worklist: the failed study's reason, a new board (empty form refused), the study added to it,
 * the board's decision, the board and review filters, the packet / CSV links, removal; a user
 * without write rights gets the 403 message.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { openSession } from "./session.mjs";

const { cfg, artifacts, page, context, timeout, log, check, finish } = await openSession("e2e/review.mjs");
let failed = false;
/** Pages whose screenshot a failure keeps (besides the main page). */
const failureShots = [];
const api = (path) => `${cfg.base_url}/pancreas-ai${path}`;
const study = cfg.study_uid;

async function apiGet(path) {
  const response = await context.request.get(api(path));
  if (!response.ok()) throw new Error(`GET ${path}: HTTP ${response.status()}`);
  return response.json();
}
const byTestId = (id) => page.getByTestId(id);
const text = async (id) => (await byTestId(id).innerText()).trim();
/** Wait until the element's attribute has one of `values`; return it. */
async function attribute(selector, name, values) {
  const handle = await page.waitForFunction(
    ({ selector, name, values }) => {
      const value = document.querySelector(selector)?.getAttribute(name);
      return values.includes(value) ? value : false;
    },
    { selector, name, values },
    { polling: 100, timeout },
  );
  return handle.jsonValue();
}

try {
  // --- viewer: the review section ------------------------------------------------------------
  await page.goto(`${cfg.base_url}/ohif/pancreas-ai?StudyInstanceUIDs=${study}`);
  await page.locator('[data-testid="pancreas-ai-panel"][data-state="ready"]').waitFor();
  await page.locator('[data-testid="pancreas-ai-review"][data-state="ready"]').waitFor();
  check("review section shown, not reviewed yet", (await byTestId("pancreas-ai-review-none").count()) === 1);
  check("investigational notice visible", /investigational, not for clinical use/i.test(await text("pancreas-ai-notice")));
  const vocabulary = await apiGet("/vocabulary");

  await byTestId("pancreas-ai-review-agree").click();
  await attribute('[data-testid="pancreas-ai-review"]', "data-verdict", ["agree"]);
  let reviews = (await apiGet(`/studies/${study}/reviews`)).reviews;
  check("agree: the API has the review", reviews.length === 1 && reviews[0].verdict === "agree" && reviews[0].disagrees === false, JSON.stringify(reviews.map((r) => r.verdict)));
  check("agree: the panel names the reviewer", (await text("pancreas-ai-review-reviewer")).startsWith(reviews[0].reviewer), await text("pancreas-ai-review-reviewer"));

  await byTestId("pancreas-ai-review-override").click();
  await byTestId("pancreas-ai-override-submit").click();
  await byTestId("pancreas-ai-override-category-error").waitFor();
  await byTestId("pancreas-ai-override-reason-error").waitFor();
  check("override: an empty form is refused with its reasons", (await apiGet(`/studies/${study}/reviews`)).reviews.length === 1, `${await text("pancreas-ai-override-category-error")} / ${await text("pancreas-ai-override-reason-error")}`);
  const aiCategory = reviews[0].ai_category;
  const mine = vocabulary.board_categories.find((c) => c.value !== aiCategory && c.value !== "metastatic");
  const overrideReason = "SMA contact exceeds 180 degrees on the arterial phase";
  await byTestId("pancreas-ai-override-category").selectOption(mine.value);
  await byTestId("pancreas-ai-override-reason").fill(overrideReason);
  await byTestId("pancreas-ai-override-submit").click();
  await attribute('[data-testid="pancreas-ai-review"]', "data-verdict", ["override"]);
  check("override: the panel shows category and reason", (await text("pancreas-ai-review-category")) === mine.text && (await text("pancreas-ai-review-reason")) === overrideReason, await text("pancreas-ai-review-category"));
  reviews = (await apiGet(`/studies/${study}/reviews`)).reviews;
  const override = reviews[reviews.length - 1];
  check("override: the API has a disagreeing review", override.verdict === "override" && override.category === mine.value && override.reason === overrideReason && override.disagrees === true, JSON.stringify({ verdict: override.verdict, category: override.category, disagrees: override.disagrees }));

  // --- correction with OHIF's brush ---------------------------------------------------------
  await page.waitForFunction(() => (window.services?.segmentationService?.getSegmentations().length ?? 0) > 0);
  await byTestId("pancreas-ai-review-correct").click();
  await byTestId("pancreas-ai-correct-form").waitFor();
  const segment = Number(await byTestId("pancreas-ai-correct-segment").inputValue());
  await byTestId("pancreas-ai-correct-brush").click();
  await attribute('[data-testid="pancreas-ai-review"]', "data-tool", ["CircularBrush"]);
  const BRUSH_SIZE = 6;
  const setup = await page.evaluate(
    ({ size }) => {
      const { toolGroupService, viewportGridService, segmentationService } = window.services;
      const viewportId = viewportGridService.getState().activeViewportId;
      const group = toolGroupService.getToolGroupForViewport(viewportId);
      window.cornerstoneTools.utilities.segmentation.setBrushSizeForToolGroup(group.id, size);
      const viewport = window.cornerstone.getEnabledElements().find((e) => e.viewport.id === viewportId)?.viewport ?? window.cornerstone.getEnabledElements()[0].viewport;
      return {
        primary: group.getActivePrimaryMouseButtonTool(),
        activeSegmentation: segmentationService.getActiveSegmentation?.(viewportId)?.segmentationId,
        viewportType: viewport.type,
      };
    },
    { size: BRUSH_SIZE },
  );
  check("correct: OHIF's brush is the primary tool on the AI SEG", setup.primary === "CircularBrush" && Boolean(setup.activeSegmentation), JSON.stringify(setup));
  // The stroke: image row 15 %, columns 15 % -> 40 % of the displayed slice (air, no AI label).
  const stroke = await page.evaluate(() => {
    const cs = window.cornerstone;
    const viewportId = window.services.viewportGridService.getState().activeViewportId;
    const viewport = cs.getEnabledElements().find((e) => e.viewport.id === viewportId)?.viewport ?? cs.getEnabledElements()[0].viewport;
    const imageId = viewport.getCurrentImageId();
    const plane = cs.metaData.get("imagePlaneModule", imageId);
    const instance = cs.metaData.get("instance", imageId);
    const rect = viewport.canvas.getBoundingClientRect();
    const scale = rect.width / viewport.canvas.clientWidth || 1;
    const points = [];
    for (let i = 0; i <= 12; i++) {
      const column = plane.columns * (0.15 + (0.25 * i) / 12);
      const row = plane.rows * 0.15;
      const world = cs.utilities.imageToWorldCoords(imageId, [column, row]);
      const [x, y] = viewport.worldToCanvas(world);
      points.push({ page: [rect.left + x * scale, rect.top + y * scale], canvas: [x, y] });
    }
    const a = viewport.worldToCanvas(cs.utilities.imageToWorldCoords(imageId, [0, 0]));
    const b = viewport.worldToCanvas(cs.utilities.imageToWorldCoords(imageId, [1, 0]));
    return {
      sop: instance.SOPInstanceUID,
      spacing: Math.min(plane.rowPixelSpacing ?? plane.pixelSpacing?.[0] ?? 1, plane.columnPixelSpacing ?? plane.pixelSpacing?.[1] ?? 1),
      canvasPerPixel: Math.hypot(b[0] - a[0], b[1] - a[1]),
      points,
    };
  });
  const [first, ...rest] = stroke.points;
  await page.mouse.move(first.page[0], first.page[1]);
  await page.mouse.down();
  for (const p of rest) await page.mouse.move(p.page[0], p.page[1], { steps: 3 });
  await page.mouse.up();
  // Where the brush actually went, in LPS mm (the viewport's own canvas -> world).
  const strokeLps = await page.evaluate((canvasPoints) => {
    const cs = window.cornerstone;
    const viewportId = window.services.viewportGridService.getState().activeViewportId;
    const viewport = cs.getEnabledElements().find((e) => e.viewport.id === viewportId)?.viewport ?? cs.getEnabledElements()[0].viewport;
    return { points: canvasPoints.map((p) => Array.from(viewport.canvasToWorld(p))), sop: cs.metaData.get("instance", viewport.getCurrentImageId()).SOPInstanceUID };
  }, stroke.points.map((p) => p.canvas));
  check("correct: the painted slice is still displayed", strokeLps.sop === stroke.sop);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.screenshot({ path: join(artifacts, "viewer-review.png") });
  writeFileSync(
    join(artifacts, "painted.json"),
    JSON.stringify({
      sop_instance_uid: stroke.sop,
      segment,
      points_lps: strokeLps.points,
      // The brush's radius (mm in cornerstone3D's brush strategies) in image pixels; the larger
      // reading if it were canvas pixels, so the pytest's bound holds either way.
      radius_px: Math.max(BRUSH_SIZE / stroke.spacing, BRUSH_SIZE / Math.max(stroke.canvasPerPixel, 1e-6)),
    }, null, 2),
  );

  await byTestId("pancreas-ai-correct-save").click();
  await byTestId("pancreas-ai-correct-reason-error").waitFor();
  check("correct: saving without a reason is refused", (await apiGet(`/studies/${study}/reviews`)).reviews.length === 2, await text("pancreas-ai-correct-reason-error"));
  await byTestId("pancreas-ai-correct-reason").fill("tumor extends towards the anterior abdominal wall");
  const posted = page.waitForResponse((r) => r.url().endsWith(`/studies/${study}/corrections`) && r.request().method() === "POST");
  await byTestId("pancreas-ai-correct-save").click();
  const response = await posted;
  const body = JSON.parse(response.request().postData() ?? "{}");
  check("correction: the plugin answered 202", response.status() === 202, `HTTP ${response.status()}`);
  check("correction: one RLE frame per CT image, each summing to rows x columns", body.frames.length === cfg.result.source.instance_count && body.frames.every((f) => f.rle.reduce((s, [, n]) => s + n, 0) === body.rows * body.columns), `${body.frames.length} frames of ${body.rows} x ${body.columns}`);
  check("correction: based on the AI SEG, referencing the CT series", body.based_on_seg_sop_instance_uid === cfg.seg_sop_uid && body.referenced_series_instance_uid === cfg.series_uid);
  await attribute('[data-testid="pancreas-ai-review"]', "data-correction", ["pending", "written"]);
  check("correction: the panel shows it pending", (await page.getByTestId("pancreas-ai-review").getAttribute("data-correction")) === "pending", await text("pancreas-ai-review-correction"));
  check("correct: the mouse is given back to window/level", (await page.evaluate(() => {
    const { toolGroupService, viewportGridService } = window.services;
    return toolGroupService.getToolGroupForViewport(viewportGridService.getState().activeViewportId).getActivePrimaryMouseButtonTool();
  })) === "WindowLevel");
  writeFileSync(join(artifacts, cfg.pending_mark), "seen\n");
  await attribute('[data-testid="pancreas-ai-review"]', "data-correction", ["written"]);
  reviews = (await apiGet(`/studies/${study}/reviews`)).reviews;
  const correction = reviews[reviews.length - 1];
  const shownSeg = await byTestId("pancreas-ai-review-correction").getAttribute("data-seg");
  check(
    "correction: the panel turns to written with the new SEG",
    correction.verdict === "correct" && correction.correction?.state === "written" && shownSeg === correction.correction.corrected_seg_sop_instance_uid && (await text("pancreas-ai-review-correction")).includes(shownSeg),
    await text("pancreas-ai-review-correction"),
  );
  const pageErrors = log.filter((l) => l.startsWith("[pageerror]"));
  check("no uncaught errors in the viewer", pageErrors.length === 0, pageErrors.join(" | "));

  // --- worklist: boards, decision, reasons --------------------------------------------------------
  await page.goto(`${cfg.base_url}/ohif/pancreas-ai-worklist`);
  await page.locator('[data-testid="worklist-table"][data-state="ready"]').waitFor();
  const row = page.locator(`[data-testid="worklist-row"][data-study-uid="${study}"]`);
  const failedRow = page.locator(`[data-testid="worklist-row"][data-study-uid="${cfg.failed_study_uid}"]`);
  await row.waitFor();
  const reason = (await failedRow.getByTestId("worklist-reason").innerText()).trim();
  check("worklist: the failed study shows its reason", reason.startsWith("failed") && reason.includes(cfg.failed_reason), reason);
  check("worklist: the review column shows the correction", (await row.getAttribute("data-review")) === "correct", (await row.getByTestId("worklist-review").innerText()).trim());

  await byTestId("worklist-new-board").click();
  await byTestId("worklist-new-board-submit").click();
  await byTestId("worklist-new-board-date-error").waitFor();
  await byTestId("worklist-new-board-title-error").waitFor();
  check("new board: an empty form is refused", (await apiGet("/boards")).boards.length === 0);
  await byTestId("worklist-new-board-date").fill("2026-12-10");
  await byTestId("worklist-new-board-title").fill("HPB board (e2e)");
  await byTestId("worklist-new-board-members").fill("Dr A (surgery)\nDr B (oncology)");
  await byTestId("worklist-new-board-submit").click();
  await page.waitForFunction(() => document.querySelector('[data-testid="worklist-board-select"]')?.value !== "");
  const boards = (await apiGet("/boards")).boards;
  const board = boards[0];
  check("new board: created through the API", boards.length === 1 && board.title === "HPB board (e2e)" && board.members.length === 2 && board.board_date === "2026-12-10", JSON.stringify(boards.map((b) => b.title)));
  check("new board: selected, the study is not on it yet", (await byTestId("worklist-board-select").inputValue()) === String(board.id));
  await page.locator('[data-testid="worklist-table"][data-state="ready"]').waitFor();
  await row.waitFor({ state: "detached" });

  await byTestId("worklist-board-select").selectOption("");
  await page.locator('[data-testid="worklist-table"][data-state="ready"]').waitFor();
  await row.getByTestId("worklist-add-board-select").selectOption(String(board.id));
  await row.getByTestId("worklist-add-board").click();
  await attribute(`[data-testid="worklist-row"][data-study-uid="${study}"]`, "data-board-id", [String(board.id)]);
  let detail = await apiGet(`/boards/${board.id}`);
  check("add to board: the API has the case", detail.cases.length === 1 && detail.cases[0].study_instance_uid === study);
  check("add to board: the decision is pending", (await row.getAttribute("data-decision")) === "pending");

  await row.getByTestId("worklist-decide").click();
  await byTestId("worklist-decision-submit").click();
  await byTestId("worklist-decision-category-error").waitFor();
  check("decision: no category is refused", (await apiGet(`/boards/${board.id}`)).cases[0].decision === null);
  const decided = vocabulary.board_categories.find((c) => c.value === mine.value);
  const [t1, t2] = vocabulary.treatments;
  await byTestId("worklist-decision-category").selectOption(decided.value);
  await byTestId(`worklist-decision-treatment-${t1.value}`).check();
  await byTestId(`worklist-decision-treatment-${t2.value}`).check();
  await byTestId("worklist-decision-text").fill("re-stage after 4 cycles");
  await byTestId("worklist-decision-submit").click();
  await attribute(`[data-testid="worklist-row"][data-study-uid="${study}"]`, "data-decision", ["decided"]);
  detail = await apiGet(`/boards/${board.id}`);
  const decision = detail.cases[0].decision;
  check("decision: the API has category, treatments and text", decision?.category === decided.value && decision.treatments.join() === [t1.value, t2.value].join() && decision.text === "re-stage after 4 cycles", JSON.stringify(decision?.treatments));

  await byTestId("worklist-board-select").selectOption(String(board.id));
  await page.locator('[data-testid="worklist-table"][data-state="ready"]').waitFor();
  await row.waitFor();
  check("board filter: only the board's case is listed", (await page.getByTestId("worklist-row").count()) === 1 && (await failedRow.count()) === 0);
  const decisionCell = (await row.getByTestId("worklist-decision").innerText()).trim();
  check(
    "worklist: the decision is shown on the board",
    decisionCell.startsWith(decided.text) && decisionCell.includes(t1.text) && decisionCell.includes(t2.text) && decisionCell.includes("re-stage after 4 cycles"),
    decisionCell,
  );
  const csvHref = await byTestId("worklist-board-csv").getAttribute("href");
  const packetHref = await byTestId("worklist-board-packet").getAttribute("href");
  const csv = await context.request.get(`${cfg.base_url}${csvHref}`);
  check("board links: packet PDF and decisions CSV", packetHref === `/pancreas-ai/boards/${board.id}/packet.pdf` && csv.status() === 200 && (await csv.text()).includes(decided.value), `${csvHref} ${csv.status()}`);
  await byTestId("worklist-filter-review").selectOption("agree");
  await row.waitFor({ state: "detached" });
  await byTestId("worklist-filter-review").selectOption("correct");
  await row.waitFor();
  await byTestId("worklist-filter-decision").selectOption("pending");
  await row.waitFor({ state: "detached" });
  await byTestId("worklist-filter-decision").selectOption("decided");
  await row.waitFor();
  check("review and decision filters", true);
  await page.screenshot({ path: join(artifacts, "worklist-board.png"), fullPage: true });

  await row.getByTestId("worklist-remove-board").click();
  await row.waitFor({ state: "detached" });
  check("remove from board: the API has no case left", (await apiGet(`/boards/${board.id}`)).cases.length === 0);

  // --- a user without write rights ------------------------------------------------------------
  const reader = await context.browser().newContext({
    viewport: { width: 1600, height: 1000 },
    httpCredentials: { username: cfg.viewer_username, password: cfg.viewer_password },
  });
  const readerPage = await reader.newPage();
  readerPage.setDefaultTimeout(timeout);
  readerPage.on("pageerror", (e) => log.push(`[reader pageerror] ${e.message}`));
  failureShots.push(readerPage);
  await readerPage.goto(`${cfg.base_url}/ohif/pancreas-ai-worklist`);
  await readerPage.locator('[data-testid="worklist-table"][data-state="ready"]').waitFor();
  await readerPage.getByTestId("worklist-new-board").click();
  await readerPage.getByTestId("worklist-new-board-date").fill("2026-12-17");
  await readerPage.getByTestId("worklist-new-board-title").fill("not allowed");
  await readerPage.getByTestId("worklist-new-board-submit").click();
  const refused = readerPage.locator('[data-testid="worklist-message"][data-kind="error"]');
  await refused.waitFor();
  const refusal = (await refused.innerText()).trim();
  check("a user without write rights is told why (403)", /write users/.test(refusal) && (await apiGet("/boards")).boards.length === 1, refusal);
  const before = (await apiGet(`/studies/${study}/reviews`)).reviews.length;
  await readerPage.goto(`${cfg.base_url}/ohif/pancreas-ai?StudyInstanceUIDs=${study}`);
  await readerPage.locator('[data-testid="pancreas-ai-review"][data-state="ready"]').waitFor();
  await readerPage.getByTestId("pancreas-ai-review-agree").click();
  const panelRefusal = readerPage.locator('[data-testid="pancreas-ai-review-message"][data-kind="error"]');
  await panelRefusal.waitFor();
  const panelText = (await panelRefusal.innerText()).trim();
  check("the panel tells a user without write rights why (403)", /write users/.test(panelText) && (await apiGet(`/studies/${study}/reviews`)).reviews.length === before, panelText);
  await reader.close();
} catch (error) {
  failed = true;
  console.error(`e2e failed: ${error instanceof Error ? error.message : error}`);
  await page.screenshot({ path: join(artifacts, "failure.png") }).catch(() => undefined);
  for (const [i, other] of failureShots.entries()) {
    await other.screenshot({ path: join(artifacts, `failure-${i + 1}.png`) }).catch(() => undefined);
  }
} finally {
  await finish(failed);
}
