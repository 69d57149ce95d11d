import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { DicomJsonDataset } from "../src/dicomJson";
import { LABELS } from "../src/labels";
import { pancreasModeInstance, EXTENSION_URL } from "../src/mode";
import { fromPluginResults, mergeResults, normaliseCategory } from "../src/plugin";
import { parseMeasurementReport } from "../src/sr";
import { filterRows, panelViewModel, ruleLevel, sortRows, viewerUrl, type WorklistRow } from "../src/viewModel";

const sr = (JSON.parse(readFileSync(new URL("./fixtures/sr-metadata.json", import.meta.url), "utf8")) as DicomJsonDataset[])[0] as DicomJsonDataset;
const result = parseMeasurementReport(sr);

describe("panelViewModel", () => {
  const view = panelViewModel(result);
  it("shows the category, bars and the disagreement warning", () => {
    expect(view.categoryText).toBe("Borderline resectable");
    expect(view.bars.map((b) => b.percent)).toEqual([12, 70, 18]);
    expect(view.bars.filter((b) => b.isPrediction).map((b) => b.label)).toEqual(["borderline"]);
    expect(view.disagreementWarning).toContain("Resectable");
    expect(view.uncertaintyText).toBe("0.042");
  });
  it("lists the five vessels with rule thresholds, legend colours and segments", () => {
    expect(view.vessels.map((v) => v.key)).toEqual(["SMA", "CA", "CHA", "SMV", "PV"]);
    const smv = view.vessels.find((v) => v.key === "SMV");
    expect(smv).toMatchObject({ angleText: "85°", thresholdText: "≥180° BR", level: "none", segmentNumber: 5 });
    expect(smv?.color).toBe("rgb(0, 170, 255)");
    expect(view.vessels[0]?.thresholdText).toBe(">0° BR · ≥180° LA");
  });
  it("formats tumor size and the model", () => {
    expect(view.tumor.volumeText).toBe("5.9 ml");
    expect(view.tumor.diameterText).toBe("27.3 mm");
    expect(view.modelText).toBe("pancreas-ai-phantom 0.3.1 · abababababab");
    expect(view.notice).toBe("Investigational, not for clinical use.");
  });
});

describe("contact-angle rule", () => {
  it("follows METHOD.md", () => {
    expect(ruleLevel("SMA", 0)).toBe("none");
    expect(ruleLevel("SMA", 10)).toBe("borderline");
    expect(ruleLevel("CA", 180)).toBe("locally advanced");
    expect(ruleLevel("SMV", 179)).toBe("none");
    expect(ruleLevel("PV", 200)).toBe("borderline");
    expect(ruleLevel("PV", undefined)).toBe("none");
  });
});

describe("plugin results route", () => {
  const body = {
    study_instance_uid: "1.2.3",
    status: "ai-done",
    result: {
      series_instance_uid: "1.2.3.4",
      category: { label: "locally-advanced", probabilities: { resectable: 0.1, borderline: 0.2, "locally advanced": 0.7 }, uncertainty: 0.05 },
      rule_category: "locally advanced",
      disagreement: false,
      measurements: { tumor_volume_ml: 12.5, tumor_max_diameter_mm: 31, contact_deg: { SMA: 190, PV: null } },
      inputs: { clinical: { used: ["age"], missing: [], imputed: [], knocked_out: true, registry_status: "unreachable" } },
      model: { name: "m", version: "2", sha256: "cd".repeat(32) },
      warnings: [],
      notice: "Investigational, not for clinical use.",
    },
  };
  it("maps the route's JSON", () => {
    const r = fromPluginResults(body);
    expect(r?.category).toEqual({ label: "locally advanced", probabilities: [0.1, 0.2, 0.7], uncertainty: 0.05 });
    expect(r?.measurements.contactDeg).toEqual({ SMA: 190 });
    expect(r?.clinical.knockedOut).toBe(true);
    expect(r?.source).toBe("plugin");
  });
  it("has no result while the job is pending", () => {
    expect(fromPluginResults({ status: "ai-pending", result: null })).toBeUndefined();
  });
  it("shows which series version was analysed, from the SR when the route has none", () => {
    const plugin = fromPluginResults(body);
    expect(plugin && panelViewModel(plugin).analysedText).toBe("—");
    const sr = { ...result, analysedSeries: "series version 2, 301 instances" };
    const merged = mergeResults(plugin, sr);
    expect(merged?.analysedSeries).toBe("series version 2, 301 instances");
    expect(merged && panelViewModel(merged).analysedText).toBe("series version 2, 301 instances");
  });
  it("says when the PDAC detector gated the staging (outcome no-pdac)", () => {
    const gated = fromPluginResults({ ...body, result: { ...body.result, category: null, outcome: "no-pdac" } });
    expect(gated?.outcome).toBe("no-pdac");
    expect(gated && panelViewModel(gated).noTumorText).toBe("PDAC detection found no PDAC: NCCN staging not given");
    expect(gated?.category).toBeUndefined();
  });
  it("keeps the SR's segments when merged", () => {
    const merged = mergeResults(fromPluginResults(body), result);
    expect(merged?.source).toBe("plugin+sr");
    expect(merged?.segments.SMV?.segmentNumber).toBe(5);
    expect(merged?.category?.label).toBe("locally advanced");
    expect(mergeResults(undefined, result)).toBe(result);
  });
  it("normalises category spellings", () => {
    expect(normaliseCategory("nccn-borderline")).toBe("borderline");
    expect(normaliseCategory("Locally advanced")).toBe("locally advanced");
    expect(normaliseCategory("other")).toBeUndefined();
  });
});

describe("worklist view model", () => {
  const row = (uid: string, over: Partial<WorklistRow>): WorklistRow => ({
    studyUid: uid, patient: `P-${uid}`, studyDate: undefined, description: "", aiStatus: "none", reason: undefined,
    category: undefined, boardDate: undefined, decision: "none", reviewer: undefined, pdacLikelihood: undefined, ...over,
  });
  const rows = [
    row("1", { studyDate: "2025-01-02", category: "borderline", aiStatus: "ai-done", boardDate: "2025-02-01", decision: "decided" }),
    row("2", { studyDate: "2025-03-01", aiStatus: "ai-pending" }),
    row("3", { studyDate: "2024-12-31", category: "locally advanced", aiStatus: "ai-done", decision: "pending" }),
  ];
  it("sorts with empty values last", () => {
    expect(sortRows(rows, "studyDate", true).map((r) => r.studyUid)).toEqual(["2", "1", "3"]);
    expect(sortRows(rows, "category", false).map((r) => r.studyUid)).toEqual(["1", "3", "2"]);
    expect(sortRows(rows, "category", true).map((r) => r.studyUid)).toEqual(["3", "1", "2"]);
    expect(sortRows(rows, "boardDate", true).map((r) => r.studyUid)).toEqual(["1", "2", "3"]);
  });
  it("filters by status, category, decision and text", () => {
    expect(filterRows(rows, { aiStatus: "ai-done" }).map((r) => r.studyUid)).toEqual(["1", "3"]);
    expect(filterRows(rows, { category: "none" }).map((r) => r.studyUid)).toEqual(["2"]);
    expect(filterRows(rows, { decision: "pending" }).map((r) => r.studyUid)).toEqual(["3"]);
    expect(filterRows(rows, { text: "p-2" }).map((r) => r.studyUid)).toEqual(["2"]);
    expect(filterRows(rows, { aiStatus: "all", category: "all", decision: "all", text: "" })).toHaveLength(3);
  });
  it("sorts and filters by the PDAC likelihood, studies without one last or left out", () => {
    const scored = [row("1", { pdacLikelihood: 0.93 }), row("2", { pdacLikelihood: 0.2 }), row("3", {})];
    expect(sortRows(scored, "pdac", true).map((r) => r.studyUid)).toEqual(["1", "2", "3"]);
    expect(sortRows(scored, "pdac", false).map((r) => r.studyUid)).toEqual(["2", "1", "3"]);
    expect(filterRows(scored, { minPdac: 0.5 }).map((r) => r.studyUid)).toEqual(["1"]);
    expect(filterRows(scored, {}).map((r) => r.studyUid)).toEqual(["1", "2", "3"]);
  });
  it("links a study to the pancreas-ai mode", () => {
    expect(viewerUrl("/ohif", "pancreas-ai", "1.2")).toBe("/ohif/pancreas-ai?StudyInstanceUIDs=1.2");
  });
});

describe("mode and labels", () => {
  it("builds on the segmentation mode with the panel on the right", () => {
    const base = {
      id: "@ohif/mode-segmentation", routeName: "segmentation", displayName: "Segmentation",
      extensions: { "@ohif/extension-default": "^3.0.0" }, hangingProtocol: ["@ohif/mnGrid"],
      routes: [{ path: "template", layoutTemplate: () => undefined, layoutInstance: { id: "layout", props: { viewports: [1, 2] } } }],
    };
    const mode = pancreasModeInstance(base);
    expect(mode.routeName).toBe("pancreas-ai");
    expect(mode.routes[0]?.layoutInstance.props.rightPanels).toEqual(["@pancreas-ai/ohif-extension.panelModule.pancreas-ai"]);
    expect(mode.routes[0]?.layoutInstance.props.viewports).toEqual([1, 2]);
    expect(Object.keys(mode.extensions)).toContain(EXTENSION_URL);
    expect(mode.hangingProtocol).toBe("@pancreas-ai/ct-seg");
  });
  it("carries the 16 labels of pancreas_contracts", () => {
    expect(LABELS.labels).toHaveLength(16);
    expect(LABELS.key_vessels).toEqual(["SMA", "CA", "CHA", "SMV", "PV"]);
    expect(LABELS.labels.find((l) => l.name === "tumor")?.rgb).toEqual([255, 40, 40]);
  });
});

describe("a no-tumor result", () => {
  const noTumorSr = (
    JSON.parse(readFileSync(new URL("./fixtures/sr-no-tumor-metadata.json", import.meta.url), "utf8")) as DicomJsonDataset[]
  )[0] as DicomJsonDataset;
  it("shows the sentence, no category and no probabilities (from the SR)", () => {
    const view = panelViewModel(parseMeasurementReport(noTumorSr));
    expect(view.noTumorText).toBe("No tumor segmented: staging not possible");
    expect(view.category).toBeUndefined();
    expect(view.categoryText).toBe("—");
    expect(view.bars).toEqual([]);
    expect(view.disagreementWarning).toBeUndefined();
    expect(view.vessels.map((v) => v.angleText)).toEqual(["—", "—", "—", "—", "—"]);
  });
  it("shows the sentence from the plugin route, with no category", () => {
    const body = {
      status: "ai-no-tumor",
      result: {
        outcome: "no-tumor",
        category: { label: null, index: null, probabilities: null, uncertainty: null, ensemble_size: null },
        rule_category: null,
        disagreement: false,
        measurements: { tumor_volume_ml: null, tumor_max_diameter_mm: null, contact_deg: { SMA: null, PV: null } },
        warnings: ["no tumor segmented: staging not possible"],
      },
    };
    const r = fromPluginResults(body);
    expect(r?.outcome).toBe("no-tumor");
    expect(r?.category).toBeUndefined();
    const view = panelViewModel(r as NonNullable<typeof r>);
    expect(view.noTumorText).toBe("No tumor segmented: staging not possible");
    expect(view.bars).toEqual([]);
  });
  it("a tumor result has no no-tumor sentence", () => {
    expect(panelViewModel(result).noTumorText).toBeUndefined();
  });
});

describe("uncertainty of a one-model bundle", () => {
  it("is not available, never 0, from the plugin route", () => {
    const body = {
      result: {
        category: {
          label: "resectable",
          probabilities: { resectable: 0.8, borderline: 0.1, "locally advanced": 0.1 },
          uncertainty: 0,
          ensemble_size: 1,
        },
        measurements: { contact_deg: {} },
      },
    };
    const r = fromPluginResults(body);
    expect(r?.category?.uncertainty).toBeUndefined();
    expect(panelViewModel(r as NonNullable<typeof r>).uncertaintyText).toBe("not available");
  });
  it("is not available when the SR leaves it out", () => {
    const { uncertainty: _dropped, ...rest } = result.category ?? { label: "resectable", probabilities: [1, 0, 0] };
    const single = { ...result, category: { ...rest, ensembleSize: 1 } };
    expect(panelViewModel(single).uncertaintyText).toBe("not available");
    expect(panelViewModel({ ...result, category: rest }).uncertaintyText).toBe("not available");
  });
});

describe("an out-of-domain result", () => {
  const oodSr = (
    JSON.parse(readFileSync(new URL("./fixtures/sr-out-of-domain-metadata.json", import.meta.url), "utf8")) as DicomJsonDataset[]
  )[0] as DicomJsonDataset;
  it("shows the withheld sentence, the grade and its reasons, no category (from the SR)", () => {
    const view = panelViewModel(parseMeasurementReport(oodSr));
    expect(view.noTumorText).toBe("CT out of the training domain: NCCN category withheld");
    expect(view.category).toBeUndefined();
    expect(view.bars).toEqual([]);
    expect(view.disagreementWarning).toBeUndefined();
    expect(view.domainText).toBe("Training domain: OUT OF DOMAIN");
    expect(view.domainReasons).toContain("sma not segmented (present in every training CT)");
  });
  it("reads the outcome from the plugin route, with no category", () => {
    const body = {
      result: {
        outcome: "out-of-domain",
        category: { label: null, index: null, probabilities: null, uncertainty: null, ensemble_size: null },
        rule_category: null,
        disagreement: false,
        measurements: { tumor_volume_ml: 3.2, contact_deg: { SMA: 90 } },
        warnings: ["CT out of the training domain: NCCN category withheld"],
      },
    };
    const r = fromPluginResults(body);
    expect(r?.outcome).toBe("out-of-domain");
    expect(r?.category).toBeUndefined();
    const view = panelViewModel(r as NonNullable<typeof r>);
    expect(view.noTumorText).toBe("CT out of the training domain: NCCN category withheld");
    expect(view.domainText).toBeUndefined(); // the route does not carry the domain section
  });
  it("a result before schema 1.3 shows no domain line", () => {
    expect(panelViewModel(result).domainText).toBeUndefined();
    expect(panelViewModel(result).domainReasons).toEqual([]);
  });
});
