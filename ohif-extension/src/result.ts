/**
 * What the panel shows: the fields of `result.json` (pancreas_contracts.result.AnalysisResult,
 * schema 1.0-1.3) that an SR or the plugin's results route carries, plus the SEG segments the SR
 * references (for highlighting).
 */
import type { CategoryLabel } from "./labels";
import type { LymphNodeAssessment } from "./lymphNodes";
import type { SurvivalPrognosis } from "./prognosis";

export interface SegmentRef {
  segmentNumber: number;
  segSopInstanceUid?: string;
}

export interface PancreasResult {
  source: "sr" | "plugin" | "plugin+sr";
  studyUid?: string;
  seriesUid?: string;
  bundle: { name: string; version: string; sha256?: string };
  /**
   * `no-tumor`: no tumor was segmented, so there is no category (schema 1.2); `out-of-domain`:
   * the CT is strongly out of the bundle's training domain, so the category is withheld (1.3).
   */
  outcome: "done" | "no-tumor" | "out-of-domain" | "no-pdac";
  /** The training-domain check (schema 1.3): its grade and the reasons behind it. */
  domain?: { grade: DomainGrade; reasons: string[] };
  /** The network's NCCN category; undefined exactly when `outcome` is not `done`. */
  category?: {
    label: CategoryLabel;
    probabilities: [number, number, number];
    uncertainty?: number;
    /** Models in the ensemble; 1: no spread, so there is no uncertainty to show. */
    ensembleSize?: number;
  };
  ruleCategory?: CategoryLabel;
  disagreement: boolean;
  measurements: {
    tumorVolumeMl?: number;
    tumorMaxDiameterMm?: number;
    contactDeg: Partial<Record<string, number>>;
  };
  clinical: {
    used: string[];
    missing: string[];
    imputed: string[];
    knockedOut: boolean;
    registryStatus?: string;
  };
  localisationConfidence?: number;
  /** Which version of the series the analysis read ("series version 2, 301 instances"; result 1.4). */
  analysedSeries?: string;
  /** The PDAC detector's answer in one line (result 1.5: "PDAC likelihood 0.91 (threshold 0.50): detected, 1 lesion"). */
  detectionText?: string;
  /** The lymph-node model's N estimate and nodes (result 1.6), undefined without a lymph-node bundle. */
  lymphNodes?: LymphNodeAssessment;
  /** The survival model's prognosis (result 1.7), undefined without a survival bundle. */
  prognosis?: SurvivalPrognosis;
  warnings: string[];
  notice: string;
  /** SEG segments by key vessel (SMA, CA, CHA, SMV, PV) and `tumor`. */
  segments: Partial<Record<string, SegmentRef>>;
}

/** The grades of result.json's `domain.grade` (pancreas_contracts.result.DomainCheck). */
export type DomainGrade = "in-domain" | "borderline" | "out-of-domain" | "not-available";

/** What the panel says when the detector found no PDAC (pancreas_contracts NO_PDAC_NOTE). */
export const NO_PDAC_TEXT = "PDAC detection found no PDAC: NCCN staging not given";

/** What the panel says instead of a withheld category (pancreas_contracts OUT_OF_DOMAIN_NOTE). */
export const OUT_OF_DOMAIN_TEXT = "CT out of the training domain: NCCN category withheld";

/** What the panel says instead of a category when no tumor was segmented. */
export const NO_TUMOR_TEXT = "No tumor segmented: staging not possible";

export class ResultParseError extends Error {
  override name = "ResultParseError";
}
