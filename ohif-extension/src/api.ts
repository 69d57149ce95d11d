/**
 * Data access from the browser, same-origin with Orthanc: DICOMweb (QIDO-RS + WADO-RS metadata)
 * for the SR, and the plugin's `/pancreas-ai/` routes when the plugin is installed.
 */
import { code, type DicomJsonDataset, sameCode, seq, str, Tags } from "./dicomJson";
import { isNEstimate } from "./lymphNodes";
import { isRiskGroup } from "./prognosis";
import { fromPluginResults, mergeResults, normaliseCategory } from "./plugin";
import type { PancreasResult } from "./result";
import { isPancreasReport, parseMeasurementReport } from "./sr";
import {
  type AiStatus,
  type Decision,
  type DecisionSummary,
  isAiStatus,
  type ReviewSummary,
  STATUS_TEXT,
  type StudyStatusInfo,
  type WorklistRow,
} from "./viewModel";

export interface Endpoints {
  dicomWeb: string;
  plugin: string;
}

export const DEFAULT_ENDPOINTS: Endpoints = { dicomWeb: "/dicom-web", plugin: "/pancreas-ai" };

export type Fetcher = (url: string, init?: RequestInit) => Promise<Response>;

const JSON_ACCEPT = { headers: { Accept: "application/dicom+json, application/json" } };

async function getJson(fetcher: Fetcher, url: string): Promise<unknown> {
  const response = await fetcher(url, { ...JSON_ACCEPT, credentials: "same-origin" });
  if (response.status === 204 || response.status === 404) return undefined;
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const text = await response.text();
  return text.trim() === "" ? undefined : (JSON.parse(text) as unknown);
}

function datasets(value: unknown): DicomJsonDataset[] {
  return Array.isArray(value) ? (value.filter((v) => v !== null && typeof v === "object") as DicomJsonDataset[]) : [];
}

function newestFirst(a: DicomJsonDataset, b: DicomJsonDataset): number {
  const key = (ds: DicomJsonDataset): string =>
    `${str(ds, Tags.ContentDate) ?? ""}${str(ds, Tags.ContentTime) ?? ""}`;
  return key(b).localeCompare(key(a));
}

/** The newest PancreasAI SR of a study, parsed; undefined when the study has none. */
export async function loadReportFromSr(
  studyUid: string,
  fetcher: Fetcher = fetch,
  endpoints: Endpoints = DEFAULT_ENDPOINTS,
): Promise<PancreasResult | undefined> {
  const study = `${endpoints.dicomWeb}/studies/${encodeURIComponent(studyUid)}`;
  const series = datasets(await getJson(fetcher, `${study}/series?Modality=SR`));
  const reports: DicomJsonDataset[] = [];
  for (const s of series) {
    const uid = str(s, Tags.SeriesInstanceUID);
    if (uid === undefined) continue;
    const instances = datasets(await getJson(fetcher, `${study}/series/${encodeURIComponent(uid)}/metadata`));
    reports.push(...instances.filter((ds) => isPancreasReport(ds) && !isAmendment(ds)));
  }
  const newest = reports.sort(newestFirst)[0];
  return newest === undefined ? undefined : parseMeasurementReport(newest);
}

/**
 * An SR that amends an earlier one (Predecessor Documents Sequence, 0040,A360): the node's SR
 * amendment of a radiologist's segmentation correction (inference/sr_amendment.py) holds the
 * review and the corrected volumes, not the AI's assessment, so it never stands for the result.
 */
export function isAmendment(ds: DicomJsonDataset): boolean {
  return (ds["0040A360"]?.Value?.length ?? 0) > 0;
}

/** The plugin's results for a study; undefined without the plugin or without a result. */
export async function loadReportFromPlugin(
  studyUid: string,
  fetcher: Fetcher = fetch,
  endpoints: Endpoints = DEFAULT_ENDPOINTS,
): Promise<PancreasResult | undefined> {
  try {
    return fromPluginResults(await getJson(fetcher, `${endpoints.plugin}/studies/${encodeURIComponent(studyUid)}/results`));
  } catch {
    return undefined; // no plugin (404) or the node's database unreachable: the SR still counts
  }
}

/**
 * The study's status word, its text and its reason from the plugin's results route (for a
 * study without a result: refused, failed, skipped, pending); undefined without the plugin.
 */
export async function loadStudyStatus(
  studyUid: string,
  fetcher: Fetcher = fetch,
  endpoints: Endpoints = DEFAULT_ENDPOINTS,
): Promise<StudyStatusInfo | undefined> {
  let body: unknown;
  try {
    body = await getJson(fetcher, `${endpoints.plugin}/studies/${encodeURIComponent(studyUid)}/results`);
  } catch {
    body = undefined;
  }
  const { status, status_text: text, reason } =
    body !== null && typeof body === "object" ? (body as Record<string, unknown>) : ({} as Record<string, unknown>);
  if (!isAiStatus(status)) {
    // Without the plugin: the node's outcome document (refusal SR), if the study holds one.
    return loadOutcomeFromSr(studyUid, fetcher, endpoints).catch(() => undefined);
  }
  return {
    status,
    text: typeof text === "string" && text !== "" ? text : STATUS_TEXT[status],
    reason: typeof reason === "string" && reason !== "" ? reason : undefined,
  };
}

const COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33";
const FINDING = { value: "121071", scheme: "DCM" };
const COMMENT = { value: "121106", scheme: "DCM" };
const IMPRESSION = { value: "121073", scheme: "DCM" };

/**
 * The node's outcome document (inference/outcome_sr.py: a Comprehensive SR holding the status
 * word, the reason and what was measured), parsed; undefined for any other SR.
 */
export function parseOutcomeSr(ds: DicomJsonDataset): StudyStatusInfo | undefined {
  if (str(ds, Tags.SOPClassUID) !== COMPREHENSIVE_SR || str(ds, "00080070") !== "PancreasAI Node") return undefined;
  const texts = seq(ds, Tags.ContentSequence).map((child) => ({
    name: code(child, Tags.ConceptNameCodeSequence),
    text: str(child, Tags.TextValue),
  }));
  const word = texts.find((t) => sameCode(t.name, FINDING))?.text?.split(":")[0];
  if (!isAiStatus(word)) return undefined;
  const reason = texts.find((t) => sameCode(t.name, COMMENT))?.text;
  const measured = texts.find((t) => sameCode(t.name, IMPRESSION))?.text;
  const parts = [reason, measured].filter((p): p is string => p !== undefined && p !== "");
  return { status: word, text: STATUS_TEXT[word], reason: parts.length === 0 ? undefined : parts.join(": ") };
}

async function loadOutcomeFromSr(
  studyUid: string,
  fetcher: Fetcher,
  endpoints: Endpoints,
): Promise<StudyStatusInfo | undefined> {
  const study = `${endpoints.dicomWeb}/studies/${encodeURIComponent(studyUid)}`;
  for (const s of datasets(await getJson(fetcher, `${study}/series?Modality=SR`))) {
    const uid = str(s, Tags.SeriesInstanceUID);
    if (uid === undefined) continue;
    const instances = datasets(await getJson(fetcher, `${study}/series/${encodeURIComponent(uid)}/metadata`));
    const found = instances.map(parseOutcomeSr).find((i) => i !== undefined);
    if (found !== undefined) return found;
  }
  return undefined;
}

export async function loadResult(
  studyUid: string,
  fetcher: Fetcher = fetch,
  endpoints: Endpoints = DEFAULT_ENDPOINTS,
): Promise<PancreasResult | undefined> {
  const [plugin, sr] = await Promise.all([
    loadReportFromPlugin(studyUid, fetcher, endpoints),
    loadReportFromSr(studyUid, fetcher, endpoints).then(
      (report) => ({ report, error: undefined }),
      (error: unknown) => ({ report: undefined, error }),
    ),
  ]);
  // An SR the panel cannot read does not hide the node's own record of the result.
  if (sr.error !== undefined && plugin === undefined) throw sr.error;
  return mergeResults(plugin, sr.report);
}

// --- worklist ------------------------------------------------------------------------------

function isoDate(dicomDate: string | undefined): string | undefined {
  return dicomDate !== undefined && /^\d{8}$/.test(dicomDate)
    ? `${dicomDate.slice(0, 4)}-${dicomDate.slice(4, 6)}-${dicomDate.slice(6, 8)}`
    : dicomDate;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function optText(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** A worklist item's `review` summary: an object with its verdict, or the verdict alone. */
export function reviewSummary(value: unknown, reviewer?: unknown): ReviewSummary | undefined {
  const o = record(value);
  const verdict = o?.verdict ?? value;
  if (verdict !== "agree" && verdict !== "override" && verdict !== "correct") return undefined;
  const correction = record(o?.correction);
  return {
    verdict,
    category: optText(o?.category),
    reviewer: optText(o?.reviewer) ?? optText(reviewer),
    correctionState: optText(correction?.state) ?? optText(o?.correction_state),
  };
}

/**
 * A worklist item's decision: the decision object (decided), a word (`pending`, `decided`,
 * `none`), or nothing: pending on a board, none on no board.
 */
export function decisionSummary(value: unknown, onBoard: boolean): { decision: Decision; info: DecisionSummary | undefined } {
  const o = record(value);
  const category = optText(o?.category);
  if (o !== undefined && category !== undefined) {
    const texts = o.treatment_texts ?? o.treatments;
    return {
      decision: "decided",
      info: {
        category,
        categoryText: optText(o.category_text),
        treatmentTexts: Array.isArray(texts) ? texts.filter((t): t is string => typeof t === "string") : [],
        text: optText(o.text),
        decidedBy: optText(o.decided_by),
      },
    };
  }
  const word = o === undefined ? value : o.state ?? o.status;
  if (word === "decided") return { decision: "decided", info: undefined };
  if (word === "pending" || onBoard) return { decision: "pending", info: undefined };
  return { decision: "none", info: undefined };
}

function pluginRow(item: Record<string, unknown>, study: DicomJsonDataset | undefined): WorklistRow | undefined {
  const uid = item.study_instance_uid;
  if (typeof uid !== "string") return undefined;
  const status = item.ai_status;
  const board = record(item.board);
  const boardId = typeof board?.id === "number" ? board.id : undefined;
  const { decision, info } = decisionSummary(item.decision, board !== undefined);
  const review = reviewSummary(item.review, item.reviewer);
  return {
    studyUid: uid,
    patient: str(study, Tags.PatientID) ?? str(study, Tags.PatientName) ?? "",
    studyDate: typeof item.study_date === "string" ? item.study_date : isoDate(str(study, Tags.StudyDate)),
    description: str(study, Tags.StudyDescription) ?? "",
    aiStatus: isAiStatus(status) ? status : "none",
    reason: typeof item.reason === "string" && item.reason !== "" ? item.reason : undefined,
    category: normaliseCategory(item.category),
    boardDate: optText(board?.date) ?? optText(board?.board_date),
    boardId,
    boardTitle: optText(board?.title),
    decision,
    decisionInfo: info,
    review,
    reviewer: review?.reviewer ?? optText(item.reviewer),
    pdacLikelihood: typeof item.pdac_likelihood === "number" ? item.pdac_likelihood : undefined,
    nEstimate: isNEstimate(item.n_estimate) ? item.n_estimate : undefined,
    nPositiveProbability: typeof item.n_positive_probability === "number" ? item.n_positive_probability : undefined,
    riskGroup: isRiskGroup(item.risk_group) ? item.risk_group : undefined,
    deathProbability3y: typeof item.death_probability_3y === "number" ? item.death_probability_3y : undefined,
  };
}

/**
 * Worklist rows: every study Orthanc holds (QIDO-RS), with the plugin's AI status, category,
 * board and decision when the plugin answers; otherwise the AI status and category come from
 * the study's SR (parsed in the browser).
 */
export async function loadWorklist(
  fetcher: Fetcher = fetch,
  endpoints: Endpoints = DEFAULT_ENDPOINTS,
  options: { board?: number } = {},
): Promise<{ rows: WorklistRow[]; source: "plugin" | "dicomweb" }> {
  // With a board chosen the plugin filters (`board`), and studies it does not list are not on it.
  const boardQuery = options.board === undefined ? "" : `&board=${options.board}`;
  const studies = datasets(
    await getJson(fetcher, `${endpoints.dicomWeb}/studies?includefield=00081030&includefield=00080061&limit=500`),
  );
  const byUid = new Map(studies.map((s) => [str(s, Tags.StudyInstanceUID) ?? "", s]));
  let pluginItems: Record<string, unknown>[] | undefined;
  try {
    const body = await getJson(fetcher, `${endpoints.plugin}/worklist?limit=1000${boardQuery}`);
    const items = body !== null && typeof body === "object" ? (body as { items?: unknown }).items : undefined;
    if (Array.isArray(items)) pluginItems = items as Record<string, unknown>[];
  } catch {
    pluginItems = undefined;
  }
  if (pluginItems !== undefined) {
    const rows = pluginItems.map((item) => pluginRow(item, byUid.get(String(item.study_instance_uid)))).filter(
      (r): r is WorklistRow => r !== undefined,
    );
    const known = new Set(rows.map((r) => r.studyUid));
    if (options.board !== undefined) return { rows, source: "plugin" };
    for (const [uid, study] of byUid) {
      if (uid !== "" && !known.has(uid)) rows.push(dicomWebRow(uid, study, undefined));
    }
    return { rows, source: "plugin" };
  }
  const rows = await Promise.all(
    [...byUid].filter(([uid]) => uid !== "").map(async ([uid, study]) => {
      const modalities = study[Tags.Modality] ?? study["00080061"];
      const hasSr = (modalities?.Value ?? []).includes("SR");
      const report = hasSr ? await loadReportFromSr(uid, fetcher, endpoints).catch(() => undefined) : undefined;
      return dicomWebRow(uid, study, report);
    }),
  );
  return { rows, source: "dicomweb" };
}

function dicomWebRow(uid: string, study: DicomJsonDataset, report: PancreasResult | undefined): WorklistRow {
  const aiStatus: AiStatus =
    report === undefined
      ? "none"
      : report.outcome === "no-tumor"
        ? "ai-no-tumor"
        : report.outcome === "out-of-domain"
          ? "ai-out-of-domain"
          : report.outcome === "no-pdac"
            ? "ai-no-pdac"
            : "ai-done";
  return {
    studyUid: uid,
    patient: str(study, Tags.PatientID) ?? str(study, Tags.PatientName) ?? "",
    studyDate: isoDate(str(study, Tags.StudyDate)),
    description: str(study, Tags.StudyDescription) ?? "",
    aiStatus,
    reason: undefined,
    category: report?.category?.label,
    boardDate: undefined,
    decision: "none",
    reviewer: undefined,
    pdacLikelihood: undefined,
    nEstimate: report?.lymphNodes?.nEstimate,
    nPositiveProbability: report?.lymphNodes?.nPositiveProbability,
    riskGroup: report?.prognosis?.riskGroup,
    deathProbability3y: report?.prognosis?.deathProbability[2],
  };
}

