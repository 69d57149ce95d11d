import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type Fetcher, loadStudyStatus, loadWorklist, parseOutcomeSr } from "../src/api";
import type { DicomJsonDataset } from "../src/dicomJson";
import { filterRows, noResultLines, STATUS_TEXT, STATUS_WORDS, type WorklistRow } from "../src/viewModel";

function fakeFetch(routes: Record<string, unknown>): Fetcher {
  return async (url: string) => {
    const path = url.split("?")[0] ?? url;
    if (!(path in routes)) return new Response("", { status: 404 });
    return new Response(JSON.stringify(routes[path]), { status: 200 });
  };
}

const REFUSAL = "not-localised: confidence 0.07, localisers_apart_mm 148, limit_mm 40";

describe("study status words", () => {
  it("are the words of pancreas_contracts.status, each with its text", () => {
    expect([...STATUS_WORDS]).toEqual(["ai-pending", "ai-done", "ai-no-tumor", "ai-out-of-domain", "ai-no-pdac", "ai-refused", "ai-failed", "ai-skipped", "none"]);
    expect(STATUS_TEXT["ai-refused"]).toBe("AI refused");
    expect(STATUS_TEXT["ai-skipped"]).toBe("AI skipped");
  });
});

describe("worklist status and reason", () => {
  it("takes every status word and the reason from the plugin's worklist route", async () => {
    const items = STATUS_WORDS.map((word, i) => ({
      study_instance_uid: `1.${i}`,
      ai_status: word,
      reason: word === "ai-refused" ? REFUSAL : word === "ai-skipped" ? "slice thickness 8 mm > 5" : null,
      decision: null,
      board: null,
    }));
    const { rows, source } = await loadWorklist(fakeFetch({ "/dicom-web/studies": [], "/pancreas-ai/worklist": { items } }));
    expect(source).toBe("plugin");
    expect(rows.map((r) => r.aiStatus)).toEqual([...STATUS_WORDS]);
    const refused = rows.find((r) => r.aiStatus === "ai-refused");
    expect(refused?.reason).toBe(REFUSAL);
    expect(rows.find((r) => r.aiStatus === "ai-skipped")?.reason).toBe("slice thickness 8 mm > 5");
    expect(rows.find((r) => r.aiStatus === "none")?.reason).toBeUndefined();
  });

  it("filters by every status word, and the text filter finds the reason", () => {
    const rows: WorklistRow[] = STATUS_WORDS.map((word, i) => ({
      studyUid: `1.${i}`, patient: "", studyDate: undefined, description: "", aiStatus: word,
      reason: word === "ai-refused" ? REFUSAL : undefined, category: undefined, boardDate: undefined,
      decision: "none", reviewer: undefined, pdacLikelihood: undefined,
    }));
    for (const word of STATUS_WORDS) {
      expect(filterRows(rows, { aiStatus: word }).map((r) => r.aiStatus)).toEqual([word]);
    }
    expect(filterRows(rows, { text: "localisers_apart" }).map((r) => r.aiStatus)).toEqual(["ai-refused"]);
  });
});

describe("panel without a result", () => {
  it("reads the status, its text and its reason from the plugin's results route", async () => {
    const fetcher = fakeFetch({
      "/pancreas-ai/studies/1.2/results": { status: "ai-refused", status_text: "AI refused", reason: REFUSAL, result: null },
    });
    const info = await loadStudyStatus("1.2", fetcher);
    expect(info).toEqual({ status: "ai-refused", text: "AI refused", reason: REFUSAL });
    expect(noResultLines(info)).toEqual({ status: "AI refused (ai-refused)", reason: REFUSAL });
  });

  it("falls back to the words of the vocabulary and to the old line without the plugin", async () => {
    const info = await loadStudyStatus("1.3", fakeFetch({ "/pancreas-ai/studies/1.3/results": { status: "ai-skipped" } }));
    expect(info).toEqual({ status: "ai-skipped", text: "AI skipped", reason: undefined });
    expect(await loadStudyStatus("1.4", fakeFetch({}))).toBeUndefined();
    expect(noResultLines(undefined)).toEqual({ status: "No PancreasAI result for this study yet.", reason: undefined });
  });
});

describe("the node's refusal document without the plugin", () => {
  // Written by inference/outcome_sr.py for a phantom CT (pydicom's DICOM JSON).
  const load = (name: string): DicomJsonDataset[] =>
    JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8")) as DicomJsonDataset[];
  const outcome = load("outcome-sr-metadata.json");
  const measured = "not-localised: confidence 0.07, min_confidence 0.30, localisers_apart_mm 148, limit_mm 40";

  it("parses the status word, the reason and the numbers, and ignores the measurement SR", () => {
    expect(parseOutcomeSr(outcome[0] as DicomJsonDataset)).toEqual({ status: "ai-refused", text: "AI refused", reason: measured });
    expect(parseOutcomeSr(load("sr-metadata.json")[0] as DicomJsonDataset)).toBeUndefined();
  });

  it("is what the panel shows when the plugin does not answer", async () => {
    const fetcher = fakeFetch({
      "/dicom-web/studies/1.5/series": [{ "0020000E": { vr: "UI", Value: ["9.9"] } }],
      "/dicom-web/studies/1.5/series/9.9/metadata": outcome,
    });
    expect(await loadStudyStatus("1.5", fetcher)).toEqual({ status: "ai-refused", text: "AI refused", reason: measured });
  });
});
