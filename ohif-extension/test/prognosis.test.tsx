import { readFileSync } from "node:fs";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { DicomJsonDataset } from "../src/dicomJson";
import { PrognosisSection } from "../src/panel/PrognosisSection";
import { fromPluginResults, mergeResults } from "../src/plugin";
import {
  componentText,
  horizonRows,
  parsePrognosis,
  PROGNOSIS_NOTICE,
  prognosisText,
  riskBadgeText,
  riskCellText,
  stageInput,
  stageText,
} from "../src/prognosis";
import type { PancreasResult } from "../src/result";
import { parseMeasurementReport } from "../src/sr";
import { filterRows, sortRows, type WorklistRow } from "../src/viewModel";

/** The plugin's `prognosis` section (orthanc_plugin/_prognosis.py), high risk. */
const section = {
  model_version: "survival-phantom 0.1.0",
  death_probability: [0.42, 0.71, 0.86],
  risk_group: "high",
  risk_horizon_years: 3,
  risk_cutoff: 0.8,
  components: {
    radiomics: { death_probability: [0.4, 0.66, 0.81] },
    clinical: { death_probability: [0.35, 0.62, 0.79] },
  },
  staging: {
    T: { value: "T3", source: "node" },
    N: { value: "N+", source: "lymph-node-model" },
    M: { value: null, source: "missing" },
  },
  reference_curves: [
    { label: "high risk", months: [0, 12, 24], survival: [1, 0.5, 0.2] },
    { label: "low risk", months: [0, 12, 24], survival: [1, 0.9, 0.7] },
  ],
  inputs_used: ["ct", "tumor_mask", "T", "N"],
  inputs_missing: ["M", "ca19_9_baseline"],
  warnings: [],
  survival_probability: [0.58, 0.29, 0.14],
  text: "high risk (death by 1/2/3 years 0.42/0.71/0.86; cut-off 0.80 at 3 years)",
};

describe("survival prognosis", () => {
  it("reads the plugin's section", () => {
    const p = parsePrognosis(section);
    expect(p?.riskGroup).toBe("high");
    expect(p?.deathProbability).toEqual([0.42, 0.71, 0.86]);
    expect(p?.riskCutoff).toBe(0.8);
    expect(p?.riskHorizonYears).toBe(3);
    expect(p?.modelVersion).toBe("survival-phantom 0.1.0");
    expect(p?.components.map(componentText)).toEqual(["radiomics 0.40/0.66/0.81", "clinical 0.35/0.62/0.79"]);
    expect(p?.staging.map(stageText)).toEqual(["T3 (node)", "N+ (lymph-node model)", "M missing"]);
    expect(p?.referenceCurves.map((c) => c.label)).toEqual(["high risk", "low risk"]);
    expect(p?.inputsMissing).toEqual(["M", "ca19_9_baseline"]);
  });

  it("is absent without a survival model or with a broken section", () => {
    expect(parsePrognosis(null)).toBeUndefined();
    expect(parsePrognosis({ ...section, risk_group: "medium" })).toBeUndefined();
    expect(parsePrognosis({ ...section, death_probability: [0.5, 0.4, 0.9] })).toBeUndefined(); // decreasing
    expect(parsePrognosis({ ...section, death_probability: [0.4, 0.7] })).toBeUndefined();
    expect(parsePrognosis({ ...section, risk_cutoff: 1.5 })).toBeUndefined();
    // A TNM input that breaks the contract is left out, not guessed.
    const odd = parsePrognosis({ ...section, staging: { T: { value: "T9", source: "node" }, M: { value: "M0", source: "missing" } } });
    expect(odd?.staging).toEqual([]);
    expect(stageInput("N", "N0", "registry")).toEqual({ key: "N", value: "N0", source: "registry" });
    expect(stageInput("N", "N0", "guess")).toBeUndefined();
  });

  it("says the prognosis in the words of SurvivalPrognosis.describe()", () => {
    expect(prognosisText(parsePrognosis(section))).toBe(section.text);
    const oneYear = parsePrognosis({ ...section, risk_group: "low", risk_horizon_years: 1, risk_cutoff: 0.5 });
    expect(prognosisText(oneYear)).toBe("low risk (death by 1/2/3 years 0.42/0.71/0.86; cut-off 0.50 at 1 year)");
    expect(prognosisText(undefined)).toBe("—");
    expect(riskBadgeText("high")).toBe("High risk");
    expect(riskBadgeText("low")).toBe("Low risk");
  });

  it("gives one row per horizon, the risk horizon marked", () => {
    const rows = horizonRows(parsePrognosis(section) ?? (undefined as never));
    expect(rows.map((r) => [r.label, r.text, r.percent, r.isRiskHorizon])).toEqual([
      ["by 1 year", "0.42", 42, false],
      ["by 2 years", "0.71", 71, false],
      ["by 3 years", "0.86", 86, true],
    ]);
  });
});

describe("the panel's Prognosis section", () => {
  const html = renderToStaticMarkup(<PrognosisSection prognosis={parsePrognosis(section) ?? (undefined as never)} />);

  it("shows the badge, the probabilities, the inputs, the model and the notice", () => {
    expect(html).toContain("<h3>Prognosis</h3>");
    expect(html).toMatch(/data-testid="pancreas-ai-risk-group" data-risk="high">High risk</);
    expect(html).toContain(section.text);
    for (const years of [1, 2, 3]) expect(html).toContain(`data-testid="pancreas-ai-death-${years}y"`);
    expect(html).toContain("T3 (node), N+ (lymph-node model), M missing");
    expect(html).toContain("M, ca19_9_baseline");
    expect(html).toContain("survival-phantom 0.1.0");
    expect(html).toContain(PROGNOSIS_NOTICE);
  });
});

describe("plugin results route with a prognosis (result 1.7)", () => {
  const body = {
    study_instance_uid: "1.2.3",
    status: "ai-done",
    result: {
      category: { label: "borderline", probabilities: { resectable: 0.2, borderline: 0.7, "locally advanced": 0.1 } },
      measurements: { contact_deg: {} },
      model: { name: "m", version: "1" },
      prognosis: section,
    },
  };

  it("carries the prognosis; the plugin's wins over the SR's", () => {
    const plugin = fromPluginResults(body);
    expect(plugin?.prognosis?.riskGroup).toBe("high");
    const without = fromPluginResults({ ...body, result: { ...body.result, prognosis: null } });
    expect(without?.prognosis).toBeUndefined();
    const sr = { ...(without as PancreasResult), source: "sr" as const, prognosis: parsePrognosis({ ...section, risk_group: "low", risk_cutoff: 0.9 }) };
    expect(mergeResults(plugin, sr)?.prognosis?.riskGroup).toBe("high");
    expect(mergeResults(without, sr)?.prognosis?.riskGroup).toBe("low");
  });
});

describe("the SR's prognosis group (inference/_sr_survival.py)", () => {
  const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"));
  const sr = (fixture("sr-prognosis-metadata.json") as DicomJsonDataset[])[0] as DicomJsonDataset;
  const expected = (fixture("result-prognosis.json") as { prognosis: typeof section; bundle: { name: string } }).prognosis;
  const result = parseMeasurementReport(sr);

  it("reads the prognosis equal to result.json (except the reference curves, not in the SR)", () => {
    const p = result.prognosis;
    expect(p).toBeDefined();
    const fromJson = parsePrognosis(expected);
    expect({ ...p, referenceCurves: [] }).toEqual({ ...fromJson, referenceCurves: [] });
    expect(p?.components.map((c) => c.name)).toEqual(["radiomics", "densenet", "clinical"]);
    expect(prognosisText(p)).toBe("high risk (death by 1/2/3 years 0.42/0.71/0.86; cut-off 0.80 at 3 years)");
  });

  it("keeps the staging, the nodes and the bundle of the same SR", () => {
    expect(result.category).toBeDefined();
    expect(result.bundle.name).toBe("pancreas-ai-phantom");
    expect(result.lymphNodes?.nEstimate).toBe("N+");
  });
});

describe("worklist risk column", () => {
  const row = (uid: string, risk: "high" | "low" | undefined, p: number | undefined): WorklistRow => ({
    studyUid: uid, patient: uid, studyDate: undefined, description: "", aiStatus: "ai-done", reason: undefined,
    category: undefined, boardDate: undefined, decision: "none", reviewer: undefined, pdacLikelihood: undefined,
    riskGroup: risk, deathProbability3y: p,
  });
  const rows = [row("a", "high", 0.86), row("b", "low", 0.35), row("c", undefined, undefined), row("d", "high", 0.95)];

  it("sorts by the probability of death by 3 years, studies without one last", () => {
    expect(sortRows(rows, "risk", true).map((r) => r.studyUid)).toEqual(["d", "a", "b", "c"]);
    expect(sortRows(rows, "risk", false).map((r) => r.studyUid)).toEqual(["b", "a", "d", "c"]);
  });

  it("filters by the risk group", () => {
    expect(filterRows(rows, { risk: "high" }).map((r) => r.studyUid)).toEqual(["a", "d"]);
    expect(filterRows(rows, { risk: "low" }).map((r) => r.studyUid)).toEqual(["b"]);
    expect(filterRows(rows, { risk: "all" })).toHaveLength(4);
  });

  it("shows the group and the 3-year probability", () => {
    expect(riskCellText("high", 0.857)).toBe("high 0.86");
    expect(riskCellText("low", undefined)).toBe("low");
    expect(riskCellText(undefined, undefined)).toBe("—");
  });
});
