#!/usr/bin/env node
/**
 * Browser test: a study the node refused (issue 20, item 2). The CT and the node's refusal
 * document (an SR with the status word, the reason and what the checks measured; written by
 * inference/outcome_sr.py) are stored in a real Orthanc without the PancreasAI plugin, so the
 * panel can only learn the outcome from the document. The `pancreas-ai` mode must show the CT
 * and, in the panel, the refusal's text and its reason with the measured numbers — not "no
 * result yet".
 *
 * Input: a JSON file (argument 1, written by tests/ohif_extension/test_e2e_refused.py) with the
 * Orthanc URL, credentials, the study UID and the expected texts; screenshots, console and
 * checks go to the folder given as argument 2; exit status 0 when every check passes.
 */
import { join } from "node:path";
import { openSession } from "./session.mjs";

const { cfg, artifacts, page, check, finish } = await openSession("e2e/refused.mjs");
let failed = false;

try {
  await page.goto(`${cfg.base_url}/ohif/pancreas-ai?StudyInstanceUIDs=${cfg.study_uid}`);
  await page.waitForFunction(
    (seriesUid) => {
      const viewport = window.cornerstone?.getEnabledElements?.()[0]?.viewport;
      const imageId = viewport?.getCurrentImageId?.();
      return Boolean(imageId && imageId.includes(seriesUid) && viewport.getImageData?.());
    },
    cfg.series_uid,
    { polling: 200 },
  );
  check("the CT is shown in the main viewport", true);
  const panel = page.locator('[data-testid="pancreas-ai-panel"][data-state="none"]');
  await panel.waitFor();
  const status = (await page.getByTestId("pancreas-ai-status").innerText()).trim();
  check("the panel shows the refusal's status text", status.startsWith(cfg.status_text), status);
  const reason = (await page.getByTestId("pancreas-ai-reason").innerText()).trim();
  for (const part of cfg.reason_parts) {
    check(`the panel's reason names '${part}'`, reason.includes(part), reason);
  }
  const panelText = await panel.innerText();
  check("the panel does not claim there is no result yet", !/no PancreasAI result/i.test(panelText), panelText);
  await page.screenshot({ path: join(artifacts, "page-refused.png") });
} catch (error) {
  failed = true;
  console.error(`e2e failed: ${error instanceof Error ? error.message : error}`);
  await page.screenshot({ path: join(artifacts, "failure.png") }).catch(() => undefined);
} finally {
  await finish(failed);
}
