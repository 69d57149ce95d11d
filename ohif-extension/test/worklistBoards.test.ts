import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decisionSummary, type Fetcher, isAmendment, loadResult, loadWorklist, reviewSummary } from "../src/api";
import type { DicomJsonDataset } from "../src/dicomJson";
import { withBoardDecisions } from "../src/worklist/Worklist";
import { decisionCellText, filterRows, reasonCellText, reviewCellText, sortRows, type WorklistRow } from "../src/viewModel";

function row(uid: string, over: Partial<WorklistRow> = {}): WorklistRow {
  return {
    studyUid: uid, patient: "", studyDate: undefined, description: "", aiStatus: "ai-done", reason: undefined,
    category: undefined, boardDate: undefined, decision: "none", reviewer: undefined, pdacLikelihood: undefined, ...over,
  };
}

/** Worklist items as orthanc_plugin/_worklist.py writes them (issue 26). */
const ITEMS = [
  {
    study_instance_uid: "1.1", ai_status: "ai-done", category: "borderline",
    board: { id: 4, date: "2026-12-10", title: "HPB" },
    review: { verdict: "override", category: "locally-advanced", reviewer: "orthanc:dr.b" },
    decision: { state: "decided", category: "locally-advanced", decided_at: "2026-12-10T10:00:00+00:00" },
  },
  {
    study_instance_uid: "1.2", ai_status: "ai-done", category: "resectable",
    board: { id: 4, date: "2026-12-10", title: "HPB" }, review: null,
    decision: { state: "pending", category: null, decided_at: null },
  },
  {
    study_instance_uid: "1.3", ai_status: "ai-failed", reason: "segmentation stage: out of memory",
    board: null, review: null, decision: { state: "none", category: null, decided_at: null },
  },
];

describe("worklist items with board, review and decision", () => {
  it("are read from the plugin's summaries", async () => {
    const fetcher: Fetcher = async (url) => {
      if (url.startsWith("/pancreas-ai/worklist")) return new Response(JSON.stringify({ items: ITEMS }));
      return new Response("[]");
    };
    const { rows } = await loadWorklist(fetcher);
    const [decided, pending, failed] = rows;
    expect(decided).toMatchObject({ boardId: 4, boardTitle: "HPB", boardDate: "2026-12-10", decision: "decided", review: { verdict: "override", category: "locally-advanced", reviewer: "orthanc:dr.b" } });
    expect(decided?.decisionInfo?.category).toBe("locally-advanced");
    expect(pending).toMatchObject({ boardId: 4, decision: "pending", review: undefined });
    expect(failed).toMatchObject({ boardId: undefined, decision: "none", reason: "segmentation stage: out of memory" });
  });

  it("ask the plugin for one board's studies, and add no study it leaves out", async () => {
    const urls: string[] = [];
    const fetcher: Fetcher = async (url) => {
      urls.push(url);
      if (url.startsWith("/pancreas-ai/worklist")) return new Response(JSON.stringify({ items: ITEMS.slice(0, 2) }));
      return new Response(JSON.stringify([{ "0020000D": { vr: "UI", Value: ["9.9"] } }]));
    };
    const { rows } = await loadWorklist(fetcher, undefined, { board: 4 });
    expect(urls).toContain("/pancreas-ai/worklist?limit=1000&board=4");
    expect(rows.map((r) => r.studyUid)).toEqual(["1.1", "1.2"]);
    const all = await loadWorklist(fetcher);
    expect(all.rows.map((r) => r.studyUid)).toEqual(["1.1", "1.2", "9.9"]);
  });

  it("accept a bare verdict or decision word, and nothing", () => {
    expect(reviewSummary("agree")).toEqual({ verdict: "agree", category: undefined, reviewer: undefined, correctionState: undefined });
    expect(reviewSummary({ verdict: "correct", correction: { state: "pending" } })?.correctionState).toBe("pending");
    expect(reviewSummary(null)).toBeUndefined();
    expect(decisionSummary(null, true).decision).toBe("pending");
    expect(decisionSummary(null, false).decision).toBe("none");
    expect(decisionSummary("decided", true).decision).toBe("decided");
  });
});

describe("worklist review and decision columns", () => {
  const rows = [
    row("1", { review: { verdict: "agree", category: undefined, reviewer: "dr.a", correctionState: undefined }, decision: "pending", boardId: 1 }),
    row("2", { review: { verdict: "override", category: "metastatic", reviewer: "dr.b", correctionState: undefined }, decision: "decided", boardId: 1,
      decisionInfo: { category: "metastatic", categoryText: undefined, treatmentTexts: [], text: undefined, decidedBy: undefined } }),
    row("3", { review: { verdict: "correct", category: undefined, reviewer: "dr.b", correctionState: "written" } }),
    row("4", { aiStatus: "ai-skipped", reason: "slice thickness 8 mm > 5" }),
  ];

  it("filter by review verdict and by decision", () => {
    expect(filterRows(rows, { review: "override" }).map((r) => r.studyUid)).toEqual(["2"]);
    expect(filterRows(rows, { review: "none" }).map((r) => r.studyUid)).toEqual(["4"]);
    expect(filterRows(rows, { decision: "decided" }).map((r) => r.studyUid)).toEqual(["2"]);
    expect(filterRows(rows, { decision: "pending" }).map((r) => r.studyUid)).toEqual(["1"]);
    expect(filterRows(rows, { decision: "none" }).map((r) => r.studyUid)).toEqual(["3", "4"]);
    expect(filterRows(rows, { review: "all", decision: "all" })).toHaveLength(4);
    expect(sortRows(rows, "review", false).map((r) => r.studyUid)).toEqual(["1", "3", "2", "4"]);
  });

  it("say who reviewed how, what the board decided, and why a study has no result", () => {
    const text = (v: string): string => ({ metastatic: "Metastatic" })[v] ?? v;
    expect(rows.map((r) => reviewCellText(r.review, text))).toEqual(["agreed (dr.a)", "overridden: Metastatic (dr.b)", "corrected (dr.b) [written]", "—"]);
    expect(rows.map((r) => decisionCellText(r, text))).toEqual(["pending", "Metastatic", "—", "—"]);
    expect(reasonCellText(rows[3]!)).toBe("skipped: slice thickness 8 mm > 5");
    expect(reasonCellText(row("5", { aiStatus: "ai-failed", reason: "failed at segmentation" }))).toBe("failed at segmentation");
    expect(reasonCellText(rows[0]!)).toBeUndefined();
  });
});

describe("a board's cases", () => {
  it("add the decision's treatments and notes the worklist summary leaves out", () => {
    const rows = [row("1", { boardId: 4, decision: "decided", decisionInfo: { category: "resectable", categoryText: undefined, treatmentTexts: [], text: undefined, decidedBy: undefined } }), row("2", { boardId: 4, decision: "pending" })];
    const merged = withBoardDecisions(rows, [
      { boardId: 4, studyInstanceUid: "1", position: 1, review: undefined,
        decision: { category: "resectable", categoryText: "Resectable", treatments: ["upfront-surgery"], treatmentTexts: ["Upfront surgical resection"], text: "fit for surgery", decidedBy: "dr.a", decidedAt: undefined } },
      { boardId: 4, studyInstanceUid: "2", position: 2, review: undefined, decision: undefined },
    ]);
    expect(decisionCellText(merged[0]!)).toBe("Resectable; Upfront surgical resection");
    expect(merged[0]?.decisionInfo?.text).toBe("fit for surgery");
    expect(merged[0]?.decisionTreatments).toEqual(["upfront-surgery"]);
    expect(merged[1]).toBe(rows[1]);
  });
});

describe("the panel's result after a correction", () => {
  const metadata = JSON.parse(readFileSync(new URL("./fixtures/sr-metadata.json", import.meta.url), "utf8")) as DicomJsonDataset[];
  const ai = metadata[0]!;
  // The node's SR amendment: a newer PancreasAI SR naming the AI SR as its predecessor, without
  // the AI's assessment.
  const amendment: DicomJsonDataset = {
    ...ai,
    "00080023": { vr: "DA", Value: ["20261207"] },
    "0040A360": { vr: "SQ", Value: [{}] },
    "0040A730": { vr: "SQ", Value: [] },
  };
  const fetcher = (sr: DicomJsonDataset[]): Fetcher => async (url) => {
    if (url.includes("/series?Modality=SR")) return new Response(JSON.stringify([{ "0020000E": { vr: "UI", Value: ["9.1"] } }]));
    if (url.endsWith("/series/9.1/metadata")) return new Response(JSON.stringify(sr));
    return new Response("", { status: 404 });
  };

  it("comes from the AI's SR, not from the newer amendment", async () => {
    expect(isAmendment(amendment)).toBe(true);
    expect(isAmendment(ai)).toBe(false);
    const result = await loadResult("1.2", fetcher([ai, amendment]));
    expect(result?.category?.label).toBeDefined();
    expect(result?.source).toBe("sr");
  });

  it("is still refused when the only SR cannot be read and the plugin has none", async () => {
    const unreadable = { ...ai, "0040A730": { vr: "SQ", Value: [] } };
    await expect(loadResult("1.2", fetcher([unreadable]))).rejects.toThrow(/resectability/);
  });
});
