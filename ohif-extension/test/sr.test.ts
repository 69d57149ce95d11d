import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { DicomJsonDataset } from "../src/dicomJson";
import { isPancreasReport, parseMeasurementReport } from "../src/sr";
import { ResultParseError } from "../src/result";

const metadata = JSON.parse(readFileSync(new URL("./fixtures/sr-metadata.json", import.meta.url), "utf8")) as DicomJsonDataset[];
const expected = JSON.parse(readFileSync(new URL("./fixtures/result.json", import.meta.url), "utf8")) as {
  study_uid: string;
  series_uid: string;
  bundle: { name: string; version: string; sha256: string };
  category: { label: string; probabilities: number[]; uncertainty: number };
  rule_category: string;
  disagreement: boolean;
  measurements: { tumor_volume_ml: number; tumor_max_diameter_mm: number; contact_deg: Record<string, number> };
  clinical: { used: string[]; missing: string[]; imputed: string[]; knocked_out: boolean; registry_status: string };
  localisation: { confidence: number };
  warnings: string[];
  notice: string;
};
const sr = metadata[0] as DicomJsonDataset;

describe("parseMeasurementReport (DICOM JSON from Orthanc's DICOMweb)", () => {
  const result = parseMeasurementReport(sr);

  it("recognises the node's SR", () => {
    expect(isPancreasReport(sr)).toBe(true);
  });

  it("reads every panel value equal to result.json", () => {
    expect(result.studyUid).toBe(expected.study_uid);
    expect(result.seriesUid).toBe(expected.series_uid);
    expect(result.bundle).toEqual(expected.bundle);
    expect(result.category?.label).toBe(expected.category.label);
    expect(result.category?.probabilities).toEqual(expected.category.probabilities);
    expect(result.category?.uncertainty).toBe(expected.category.uncertainty);
    expect(result.ruleCategory).toBe(expected.rule_category);
    expect(result.disagreement).toBe(expected.disagreement);
    expect(result.measurements.tumorVolumeMl).toBe(expected.measurements.tumor_volume_ml);
    expect(result.measurements.tumorMaxDiameterMm).toBe(expected.measurements.tumor_max_diameter_mm);
    expect(result.measurements.contactDeg).toEqual(expected.measurements.contact_deg);
    expect(result.clinical).toEqual({
      used: expected.clinical.used,
      missing: expected.clinical.missing,
      imputed: expected.clinical.imputed,
      knockedOut: expected.clinical.knocked_out,
      registryStatus: expected.clinical.registry_status,
    });
    expect(result.localisationConfidence).toBe(expected.localisation.confidence);
    expect(result.warnings).toEqual(expected.warnings);
    expect(result.notice).toBe(expected.notice);
  });

  it("finds the SEG segment of the tumor and of each vessel", () => {
    expect(result.segments.tumor?.segmentNumber).toBe(2);
    expect(result.segments.SMV?.segmentNumber).toBe(5);
    expect(result.segments.PV?.segmentNumber).toBe(3);
    expect(Object.keys(result.segments).sort()).toEqual(["CA", "CHA", "PV", "SMA", "SMV", "tumor"]);
    expect(result.segments.SMA?.segSopInstanceUid).toMatch(/^[0-9.]+$/);
  });

  it("accepts numbers sent as strings (DS) and ignores unknown items", () => {
    const text = JSON.stringify(sr).replace(/"0040A30A":\{"vr":"DS","Value":\[([0-9.]+)\]\}/g, '"0040A30A":{"vr":"DS","Value":["$1"]}');
    const again = parseMeasurementReport(JSON.parse(text) as DicomJsonDataset);
    expect(again.category?.probabilities).toEqual(expected.category.probabilities);
  });

  it("refuses an SR without a resectability assessment", () => {
    const empty: DicomJsonDataset = { "00080016": { vr: "UI", Value: ["1.2.840.10008.5.1.4.1.1.88.34"] } };
    expect(() => parseMeasurementReport(empty)).toThrow(ResultParseError);
    expect(isPancreasReport(empty)).toBe(false);
  });
});

describe("a no-tumor SR (result.json outcome no-tumor)", () => {
  const noTumorSr = (
    JSON.parse(readFileSync(new URL("./fixtures/sr-no-tumor-metadata.json", import.meta.url), "utf8")) as DicomJsonDataset[]
  )[0] as DicomJsonDataset;
  const stored = JSON.parse(readFileSync(new URL("./fixtures/result-no-tumor.json", import.meta.url), "utf8")) as {
    outcome: string;
    category: null;
    warnings: string[];
  };
  const result = parseMeasurementReport(noTumorSr);

  it("reads no tumor, no category, no rule category and no angles", () => {
    expect(stored.outcome).toBe("no-tumor");
    expect(stored.category).toBeNull();
    expect(result.outcome).toBe("no-tumor");
    expect(result.category).toBeUndefined();
    expect(result.ruleCategory).toBeUndefined();
    expect(result.disagreement).toBe(false);
    expect(result.measurements.contactDeg).toEqual({});
    expect(result.measurements.tumorVolumeMl).toBeUndefined();
    expect(result.warnings).toEqual(stored.warnings);
    expect(result.warnings).toContain("no tumor segmented: staging not possible");
  });

  it("reads a tumor SR as done", () => {
    expect(parseMeasurementReport(sr).outcome).toBe("done");
  });
});

describe("an out-of-domain SR (result.json 1.3, outcome out-of-domain)", () => {
  const oodSr = (
    JSON.parse(readFileSync(new URL("./fixtures/sr-out-of-domain-metadata.json", import.meta.url), "utf8")) as DicomJsonDataset[]
  )[0] as DicomJsonDataset;
  const stored = JSON.parse(readFileSync(new URL("./fixtures/result-out-of-domain.json", import.meta.url), "utf8")) as {
    outcome: string;
    category: null;
    domain: { grade: string; reasons: string[] };
    measurements: { tumor_volume_ml: number };
    warnings: string[];
  };
  const result = parseMeasurementReport(oodSr);

  it("reads the withheld category, the grade and its reasons", () => {
    expect(stored.outcome).toBe("out-of-domain");
    expect(stored.category).toBeNull();
    expect(result.outcome).toBe("out-of-domain");
    expect(result.category).toBeUndefined();
    expect(result.ruleCategory).toBeUndefined();
    expect(result.disagreement).toBe(false);
    expect(result.domain).toEqual({ grade: "out-of-domain", reasons: stored.domain.reasons });
    expect(result.measurements.tumorVolumeMl).toBeCloseTo(stored.measurements.tumor_volume_ml, 3);
    expect(result.warnings).toEqual(stored.warnings);
    expect(result.warnings).toContain("CT out of the training domain: NCCN category withheld");
  });

  it("an SR written before schema 1.3 has no domain", () => {
    expect(parseMeasurementReport(metadata[0] as DicomJsonDataset).domain).toBeUndefined();
  });
});
