/** Pure view models of the panel and the worklist (unit-tested; no DOM, no React). */
import { type CategoryLabel, cssColor, LABELS, type LabelsDocument, labelByName } from "./labels";
import type { NEstimate } from "./lymphNodes";
import type { RiskGroup } from "./prognosis";
import { type DomainGrade, NO_PDAC_TEXT, NO_TUMOR_TEXT, OUT_OF_DOMAIN_TEXT, type PancreasResult } from "./result";

export interface ProbabilityBar {
  label: CategoryLabel;
  percent: number;
  text: string;
  isPrediction: boolean;
}

export type RuleLevel = "none" | "borderline" | "locally advanced";

export interface VesselRow {
  key: string;
  name: string;
  angleDeg: number | undefined;
  angleText: string;
  thresholdText: string;
  level: RuleLevel;
  color: string;
  segmentNumber: number | undefined;
}

export interface PanelViewModel {
  /**
   * Undefined when no tumor was segmented or the category is withheld out of the training domain
   * (then `noTumorText` says which, and `bars` is empty).
   */
  category: CategoryLabel | undefined;
  categoryText: string;
  noTumorText: string | undefined;
  /** The training-domain grade in words ("Training domain: ..."), undefined before schema 1.3. */
  domainText: string | undefined;
  domainReasons: string[];
  bars: ProbabilityBar[];
  uncertaintyText: string;
  ruleCategoryText: string;
  disagreementWarning: string | undefined;
  vessels: VesselRow[];
  tumor: { volumeText: string; diameterText: string; color: string; segmentNumber: number | undefined };
  clinical: { used: string[]; missing: string[]; imputed: string[]; knockedOut: boolean; registryText: string };
  modelText: string;
  /** Which version of the series was analysed, "—" before result 1.4. */
  analysedText: string;
  /** The PDAC detector's answer, "—" without a detection bundle (before result 1.5). */
  detectionText: string;
  warnings: string[];
  notice: string;
  sourceText: string;
}

const DOMAIN_TEXT: Record<DomainGrade, string> = {
  "in-domain": "Training domain: in domain",
  borderline: "Training domain: borderline",
  "out-of-domain": "Training domain: OUT OF DOMAIN",
  "not-available": "Training domain: not checked (no statistics in the bundle)",
};

const CATEGORY_TEXT: Record<CategoryLabel, string> = {
  resectable: "Resectable",
  borderline: "Borderline resectable",
  "locally advanced": "Locally advanced",
};

export function categoryText(label: CategoryLabel | undefined): string {
  return label === undefined ? "—" : CATEGORY_TEXT[label];
}

export function formatNumber(value: number | undefined, digits: number, unit: string): string {
  return value === undefined ? "—" : `${value.toFixed(digits)}${unit}`;
}

/** METHOD.md's contact-angle rule for one vessel. */
export function ruleLevel(vessel: string, angle: number | undefined, doc: LabelsDocument = LABELS): RuleLevel {
  if (angle === undefined || angle <= 0) return "none";
  const threshold = doc.rule.threshold_deg;
  if (doc.rule.arterial.includes(vessel)) return angle >= threshold ? "locally advanced" : "borderline";
  if (doc.rule.venous.includes(vessel)) return angle >= threshold ? "borderline" : "none";
  return "none";
}

export function thresholdText(vessel: string, doc: LabelsDocument = LABELS): string {
  const t = doc.rule.threshold_deg;
  if (doc.rule.arterial.includes(vessel)) return `>0° BR · ≥${t}° LA`;
  if (doc.rule.venous.includes(vessel)) return `≥${t}° BR`;
  return "";
}

/** The ensemble's spread; "not available" for one model (no spread, never 0) or none given. */
export function uncertaintyText(category: PancreasResult["category"]): string {
  if (category?.uncertainty === undefined || category.ensembleSize === 1) return "not available";
  return formatNumber(category.uncertainty, 3, "");
}

export function panelViewModel(result: PancreasResult, doc: LabelsDocument = LABELS): PanelViewModel {
  const category = result.outcome === "done" ? result.category : undefined;
  const bars =
    category === undefined
      ? []
      : doc.categories.map((label, i) => {
          const p = category.probabilities[i] ?? 0;
          return {
            label,
            percent: Math.round(p * 1000) / 10,
            text: `${(p * 100).toFixed(1)} %`,
            isPrediction: label === category.label,
          };
        });
  const vessels = doc.key_vessels.map((key): VesselRow => {
    const label = labelByName(doc.vessel_segments[key] ?? "", doc);
    const angle = result.measurements.contactDeg[key];
    return {
      key,
      name: label?.display ?? key,
      angleDeg: angle,
      angleText: formatNumber(angle, 0, "°"),
      thresholdText: thresholdText(key, doc),
      level: ruleLevel(key, angle, doc),
      color: label === undefined ? "transparent" : cssColor(label.rgb),
      segmentNumber: result.segments[key]?.segmentNumber,
    };
  });
  const tumorLabel = labelByName("tumor", doc);
  const disagreement =
    result.disagreement && result.ruleCategory !== undefined && category !== undefined
      ? `Network (${categoryText(category.label)}) and contact-angle rule ` +
        `(${categoryText(result.ruleCategory)}) disagree: review the vessel contacts.`
      : undefined;
  const sha = result.bundle.sha256 === undefined ? "" : ` · ${result.bundle.sha256.slice(0, 12)}`;
  return {
    category: category?.label,
    categoryText: categoryText(category?.label),
    noTumorText:
      result.outcome === "no-tumor"
        ? NO_TUMOR_TEXT
        : result.outcome === "out-of-domain"
          ? OUT_OF_DOMAIN_TEXT
          : result.outcome === "no-pdac"
            ? NO_PDAC_TEXT
            : undefined,
    domainText: result.domain === undefined ? undefined : DOMAIN_TEXT[result.domain.grade],
    domainReasons: result.domain?.reasons ?? [],
    bars,
    uncertaintyText: uncertaintyText(category),
    ruleCategoryText: categoryText(result.ruleCategory),
    disagreementWarning: disagreement,
    vessels,
    tumor: {
      volumeText: formatNumber(result.measurements.tumorVolumeMl, 1, " ml"),
      diameterText: formatNumber(result.measurements.tumorMaxDiameterMm, 1, " mm"),
      color: tumorLabel === undefined ? "transparent" : cssColor(tumorLabel.rgb),
      segmentNumber: result.segments.tumor?.segmentNumber,
    },
    clinical: {
      used: result.clinical.used,
      missing: result.clinical.missing,
      imputed: result.clinical.imputed,
      knockedOut: result.clinical.knockedOut,
      registryText: result.clinical.registryStatus ?? "—",
    },
    modelText: `${result.bundle.name} ${result.bundle.version}${sha}`,
    analysedText: result.analysedSeries ?? "—",
    detectionText: result.detectionText ?? "—",
    warnings: result.warnings,
    notice: result.notice,
    sourceText:
      result.source === "sr"
        ? "from the study's SR"
        : result.source === "plugin"
          ? "from the node (plugin route)"
          : "from the node (plugin route) + SR",
  };
}

// --- worklist ------------------------------------------------------------------------------

/** The study status words of pancreas_contracts/status.py (StudyStatus), in its order. */
export const STATUS_WORDS = ["ai-pending", "ai-done", "ai-no-tumor", "ai-out-of-domain", "ai-no-pdac", "ai-refused", "ai-failed", "ai-skipped", "none"] as const;
export type AiStatus = (typeof STATUS_WORDS)[number];

/** What a person reads for each word (pancreas_contracts/status.py STATUS_TEXT). */
export const STATUS_TEXT: Readonly<Record<AiStatus, string>> = {
  "ai-pending": "AI pending",
  "ai-done": "AI done",
  "ai-no-tumor": "No tumor segmented: staging not possible",
  "ai-out-of-domain": "CT out of the training domain: NCCN category withheld",
  "ai-no-pdac": "No PDAC detected: NCCN staging not given",
  "ai-refused": "AI refused",
  "ai-failed": "AI failed",
  "ai-skipped": "AI skipped",
  none: "No AI result",
};

export function isAiStatus(value: unknown): value is AiStatus {
  return typeof value === "string" && (STATUS_WORDS as readonly string[]).includes(value);
}

/** A study's status from the plugin's results route, for a study without a result. */
export interface StudyStatusInfo {
  status: AiStatus;
  text: string;
  reason: string | undefined;
}

/** The panel's lines when there is no result: the status's words and its reason. */
export function noResultLines(info: StudyStatusInfo | undefined): { status: string; reason: string | undefined } {
  if (info === undefined) return { status: "No PancreasAI result for this study yet.", reason: undefined };
  return { status: `${info.text} (${info.status})`, reason: info.reason };
}
/** A study's board decision: on a board and decided, on a board and not yet, on no board. */
export type Decision = "pending" | "decided" | "none";
/** The radiologist's newest review of the study's result ("none": not reviewed). */
export type ReviewWord = "agree" | "override" | "correct" | "none";

/** What a worklist row shows of the study's review (docs/tumor-board.md). */
export interface ReviewSummary {
  verdict: Exclude<ReviewWord, "none">;
  category: string | undefined;
  reviewer: string | undefined;
  correctionState: string | undefined;
}

/** What a worklist row shows of the board's decision. */
export interface DecisionSummary {
  category: string;
  categoryText: string | undefined;
  treatmentTexts: string[];
  text: string | undefined;
  decidedBy: string | undefined;
}

export interface WorklistRow {
  studyUid: string;
  patient: string;
  studyDate: string | undefined;
  description: string;
  aiStatus: AiStatus;
  /** Why the study stands there (refusal and numbers, failure stage, skipping rule). */
  reason: string | undefined;
  category: CategoryLabel | undefined;
  boardDate: string | undefined;
  /** The board the study is on (its id and title), undefined when on none. */
  boardId?: number | undefined;
  boardTitle?: string | undefined;
  decision: Decision;
  decisionInfo?: DecisionSummary | undefined;
  /** The decision's coded treatments (known when the board's cases were read). */
  decisionTreatments?: string[] | undefined;
  review?: ReviewSummary | undefined;
  reviewer: string | undefined;
  /** The PDAC detector's patient likelihood (result 1.5), undefined without a detector. */
  pdacLikelihood: number | undefined;
  /** The lymph-node model's N estimate and probability of N+ (result 1.6), undefined without one. */
  nEstimate?: NEstimate | undefined;
  nPositiveProbability?: number | undefined;
  /** The survival model's risk group and probability of death by 3 years (result 1.7), undefined without one. */
  riskGroup?: RiskGroup | undefined;
  deathProbability3y?: number | undefined;
}

export type SortKey = "studyDate" | "patient" | "aiStatus" | "category" | "pdac" | "n" | "risk" | "boardDate" | "review" | "decision";

export interface WorklistFilter {
  text?: string;
  aiStatus?: AiStatus | "all";
  category?: CategoryLabel | "none" | "all";
  decision?: Decision | "all";
  review?: ReviewWord | "all";
  /** Only studies whose PDAC likelihood is at least this (studies without one are left out). */
  minPdac?: number;
  /** Only studies with this N estimate (studies without a lymph-node result are left out). */
  nStatus?: NEstimate | "all";
  /** Only studies in this risk group (studies without a survival result are left out). */
  risk?: RiskGroup | "all";
}

function sortValue(row: WorklistRow, key: SortKey): string | undefined {
  switch (key) {
    case "category":
      return row.category === undefined ? undefined : String(LABELS.categories.indexOf(row.category));
    case "decision":
      return row.decision === "none" ? undefined : row.decision;
    case "review":
      return row.review?.verdict;
    case "aiStatus":
      return row.aiStatus;
    case "pdac":
      return row.pdacLikelihood === undefined ? undefined : row.pdacLikelihood.toFixed(4);
    case "n":
      // By the probability of N+ (the estimate follows from it and the threshold).
      return row.nPositiveProbability === undefined ? undefined : row.nPositiveProbability.toFixed(4);
    case "risk":
      // By the probability of death by 3 years (the group follows from it and the cut-off).
      return row.deathProbability3y === undefined ? undefined : row.deathProbability3y.toFixed(4);
    default:
      return row[key];
  }
}

/** Sorted copy; empty values always last, ties by study UID (stable across reloads). */
export function sortRows(rows: readonly WorklistRow[], key: SortKey, descending: boolean): WorklistRow[] {
  return [...rows].sort((a, b) => {
    const va = sortValue(a, key);
    const vb = sortValue(b, key);
    if (va === undefined && vb !== undefined) return 1;
    if (vb === undefined && va !== undefined) return -1;
    if (va !== undefined && vb !== undefined && va !== vb) {
      const order = va < vb ? -1 : 1;
      return descending ? -order : order;
    }
    return a.studyUid < b.studyUid ? -1 : a.studyUid > b.studyUid ? 1 : 0;
  });
}

export function filterRows(rows: readonly WorklistRow[], filter: WorklistFilter): WorklistRow[] {
  const text = filter.text?.trim().toLowerCase() ?? "";
  return rows.filter((row) => {
    if (filter.aiStatus !== undefined && filter.aiStatus !== "all" && row.aiStatus !== filter.aiStatus) return false;
    if (filter.category !== undefined && filter.category !== "all" && (row.category ?? "none") !== filter.category) {
      return false;
    }
    if (filter.decision !== undefined && filter.decision !== "all" && row.decision !== filter.decision) return false;
    if (filter.review !== undefined && filter.review !== "all" && (row.review?.verdict ?? "none") !== filter.review) return false;
    if (filter.minPdac !== undefined && (row.pdacLikelihood === undefined || row.pdacLikelihood < filter.minPdac)) {
      return false;
    }
    if (filter.nStatus !== undefined && filter.nStatus !== "all" && row.nEstimate !== filter.nStatus) return false;
    if (filter.risk !== undefined && filter.risk !== "all" && row.riskGroup !== filter.risk) return false;
    if (text === "") return true;
    return [row.patient, row.description, row.studyUid, row.reason ?? ""].some((v) => v.toLowerCase().includes(text));
  });
}

/** URL of the study in the pancreas-ai mode, relative to the viewer's base (e.g. "/ohif/"). */
export function viewerUrl(base: string, route: string, studyUid: string): string {
  const root = base.endsWith("/") ? base : `${base}/`;
  return `${root}${route}?StudyInstanceUIDs=${encodeURIComponent(studyUid)}`;
}

const VERDICT_WORD: Record<ReviewSummary["verdict"], string> = { agree: "agreed", override: "overridden", correct: "corrected" };

/** The worklist's review cell: "overridden: Locally advanced (dr.a)", "—" when not reviewed. */
export function reviewCellText(review: ReviewSummary | undefined, categoryText: (value: string) => string = (v) => v): string {
  if (review === undefined) return "—";
  const category = review.verdict === "agree" || review.category === undefined ? "" : `: ${categoryText(review.category)}`;
  const who = review.reviewer === undefined ? "" : ` (${review.reviewer})`;
  const correction = review.verdict === "correct" && review.correctionState !== undefined ? ` [${review.correctionState}]` : "";
  return `${VERDICT_WORD[review.verdict]}${category}${who}${correction}`;
}

/** The worklist's decision cell: "—" on no board, "pending", or the category and treatments. */
export function decisionCellText(
  row: Pick<WorklistRow, "decision" | "decisionInfo">,
  categoryText: (value: string) => string = (v) => v,
): string {
  if (row.decision === "none") return "—";
  const d = row.decisionInfo;
  if (row.decision === "pending") return "pending";
  if (d === undefined) return "decided";
  const treatments = d.treatmentTexts.length === 0 ? "" : `; ${d.treatmentTexts.join(", ")}`;
  return `${d.categoryText ?? categoryText(d.category)}${treatments}`;
}

/**
 * A study's reason in the worklist for a study without a result: "skipped: <why>" (the
 * status word without its "ai-" prefix, then the node's reason); undefined with a result.
 */
export function reasonCellText(row: Pick<WorklistRow, "aiStatus" | "reason">): string | undefined {
  if (row.reason === undefined) return undefined;
  const word = row.aiStatus.startsWith("ai-") ? row.aiStatus.slice(3) : row.aiStatus;
  return row.reason.toLowerCase().startsWith(word) ? row.reason : `${word}: ${row.reason}`;
}
