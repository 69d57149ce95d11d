/**
 * The tumor board's shapes as the plugin's `/pancreas-ai/` routes give them (docs/tumor-board.md),
 * parsed defensively from JSON, and the pure view models and form checks of the review section
 * and the board views (unit-tested; no DOM, no React). The vocabulary itself is the node's
 * (`GET /pancreas-ai/vocabulary`, from pancreas_contracts/boards.py): nothing here hard-codes
 * the board categories or treatments except the fallback texts of a verdict.
 */

export type Verdict = "agree" | "override" | "correct";
export type CorrectionStateWord = "pending" | "written" | "failed";

export interface Choice {
  value: string;
  text: string;
}

export interface Vocabulary {
  boardCategories: Choice[];
  treatments: Choice[];
}

export interface CorrectionState {
  state: CorrectionStateWord;
  correctedSegSopInstanceUid: string | undefined;
  amendmentSrSopInstanceUid: string | undefined;
  error: string | undefined;
}

export interface Review {
  id: number | string;
  verdict: Verdict;
  aiCategory: string | undefined;
  category: string | undefined;
  reason: string | undefined;
  reviewer: string | undefined;
  createdAt: string | undefined;
  disagrees: boolean;
  correction: CorrectionState | undefined;
}

export interface Decision {
  category: string;
  categoryText: string | undefined;
  treatments: string[];
  treatmentTexts: string[];
  text: string | undefined;
  decidedBy: string | undefined;
  decidedAt: string | undefined;
}

export interface Board {
  id: number;
  boardDate: string;
  title: string;
  members: string[];
  caseCount: number;
  decidedCount: number;
  packetUrl: string | undefined;
}

export interface BoardCase {
  boardId: number;
  studyInstanceUid: string;
  position: number | undefined;
  review: Review | undefined;
  decision: Decision | undefined;
}

type Json = unknown;

function obj(value: Json): Record<string, Json> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, Json>) : undefined;
}

function text(value: Json): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function strings(value: Json): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function isVerdict(value: Json): value is Verdict {
  return value === "agree" || value === "override" || value === "correct";
}

function choices(value: Json): Choice[] {
  if (!Array.isArray(value)) return [];
  return value
    .map((v) => {
      const o = obj(v);
      const val = text(o?.value) ?? text(v);
      return val === undefined ? undefined : { value: val, text: text(o?.text) ?? val };
    })
    .filter((c): c is Choice => c !== undefined);
}

export function parseVocabulary(body: Json): Vocabulary {
  const root = obj(body);
  return { boardCategories: choices(root?.board_categories), treatments: choices(root?.treatments) };
}

export function parseCorrection(value: Json): CorrectionState | undefined {
  const o = obj(value);
  const state = o?.state;
  if (state !== "pending" && state !== "written" && state !== "failed") return undefined;
  return {
    state,
    correctedSegSopInstanceUid: text(o?.corrected_seg_sop_instance_uid),
    amendmentSrSopInstanceUid: text(o?.amendment_sr_sop_instance_uid),
    error: text(o?.error),
  };
}

export function parseReview(value: Json): Review | undefined {
  const o = obj(value);
  if (o === undefined || !isVerdict(o.verdict)) return undefined;
  const id = typeof o.id === "number" || typeof o.id === "string" ? o.id : "";
  return {
    id,
    verdict: o.verdict,
    aiCategory: text(o.ai_category),
    category: text(o.category),
    reason: text(o.reason),
    reviewer: text(o.reviewer),
    createdAt: text(o.created_at),
    disagrees: o.disagrees === true,
    correction: parseCorrection(o.correction),
  };
}

/** `GET /studies/{study}/reviews`: the reviews, oldest first. */
export function parseReviews(body: Json): Review[] {
  const list = obj(body)?.reviews;
  return Array.isArray(list) ? list.map(parseReview).filter((r): r is Review => r !== undefined) : [];
}

export function parseDecision(value: Json): Decision | undefined {
  const o = obj(value);
  const category = text(o?.category);
  if (o === undefined || category === undefined) return undefined;
  return {
    category,
    categoryText: text(o.category_text),
    treatments: strings(o.treatments),
    treatmentTexts: strings(o.treatment_texts),
    text: text(o.text),
    decidedBy: text(o.decided_by),
    decidedAt: text(o.decided_at),
  };
}

export function parseBoard(value: Json): Board | undefined {
  const o = obj(value);
  const id = o?.id;
  const boardDate = text(o?.board_date);
  if (typeof id !== "number" || boardDate === undefined) return undefined;
  return {
    id,
    boardDate,
    title: text(o?.title) ?? "",
    members: strings(o?.members),
    caseCount: typeof o?.case_count === "number" ? o.case_count : 0,
    decidedCount: typeof o?.decided_count === "number" ? o.decided_count : 0,
    packetUrl: text(obj(o?.packet)?.url),
  };
}

export function parseBoards(body: Json): Board[] {
  const list = obj(body)?.boards;
  return Array.isArray(list) ? list.map(parseBoard).filter((b): b is Board => b !== undefined) : [];
}

export function parseCase(value: Json): BoardCase | undefined {
  const o = obj(value);
  const uid = text(o?.study_instance_uid);
  if (uid === undefined || typeof o?.board_id !== "number") return undefined;
  return {
    boardId: o.board_id,
    studyInstanceUid: uid,
    position: typeof o.position === "number" ? o.position : undefined,
    review: parseReview(o.review),
    decision: parseDecision(o.decision),
  };
}

// --- view models -----------------------------------------------------------------------------

const VERDICT_TEXT: Record<Verdict, string> = {
  agree: "Agreed with the AI",
  override: "Category overridden",
  correct: "Segmentation corrected",
};

const CORRECTION_TEXT: Record<CorrectionStateWord, string> = {
  pending: "correction pending (the node is writing the new SEG)",
  written: "correction written",
  failed: "correction failed",
};

/** The text of a category value in the vocabulary ("borderline" -> "Borderline resectable"). */
export function choiceText(list: readonly Choice[], value: string | undefined): string {
  if (value === undefined) return "—";
  return list.find((c) => c.value === value)?.text ?? value;
}

/** "2026-12-07T03:55:00Z" -> "2026-12-07 03:55 UTC" (the node's times are UTC). */
export function timeText(iso: string | undefined): string {
  if (iso === undefined) return "—";
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return m === null ? iso : `${m[1]} ${m[2]} UTC`;
}

export interface ReviewLines {
  verdict: Verdict;
  verdictText: string;
  reviewerText: string;
  timeText: string;
  categoryText: string;
  reason: string | undefined;
  /** Undefined unless the review is a correction. */
  correctionText: string | undefined;
  correctionState: CorrectionStateWord | undefined;
  correctedSegUid: string | undefined;
  disagrees: boolean;
}

/** What the review section shows of the newest review. */
export function reviewLines(review: Review, categories: readonly Choice[]): ReviewLines {
  const c = review.correction;
  let correctionText: string | undefined;
  if (c !== undefined) {
    correctionText = CORRECTION_TEXT[c.state];
    if (c.state === "written" && c.correctedSegSopInstanceUid !== undefined) correctionText += `: SEG ${c.correctedSegSopInstanceUid}`;
    if (c.state === "failed" && c.error !== undefined) correctionText += `: ${c.error}`;
  } else if (review.verdict === "correct") {
    correctionText = CORRECTION_TEXT.pending;
  }
  const category = review.verdict === "agree" ? review.aiCategory : review.category ?? review.aiCategory;
  return {
    verdict: review.verdict,
    verdictText: VERDICT_TEXT[review.verdict],
    reviewerText: review.reviewer ?? "—",
    timeText: timeText(review.createdAt),
    categoryText: choiceText(categories, category),
    reason: review.reason,
    correctionText,
    correctionState: c?.state ?? (review.verdict === "correct" ? "pending" : undefined),
    correctedSegUid: c?.correctedSegSopInstanceUid,
    disagrees: review.disagrees,
  };
}

/** The newest review (the list is oldest first). */
export function latestReview(reviews: readonly Review[]): Review | undefined {
  return reviews[reviews.length - 1];
}

// --- form checks -------------------------------------------------------------------------------

/** The node refuses longer free texts (pancreas_contracts.boards.MAX_FREE_TEXT). */
export const MAX_FREE_TEXT = 4000;

export type Errors = Record<string, string>;

function reasonError(reason: string, what: string): string | undefined {
  const trimmed = reason.trim();
  if (trimmed === "") return `Give a reason for the ${what}.`;
  if (trimmed.length > MAX_FREE_TEXT) return `The reason is at most ${MAX_FREE_TEXT} characters.`;
  return undefined;
}

/** An override needs the radiologist's category (one of the vocabulary's) and a reason. */
export function validateOverride(category: string, reason: string, categories: readonly Choice[]): Errors {
  const errors: Errors = {};
  if (category === "") errors.category = "Choose your category.";
  else if (categories.length > 0 && !categories.some((c) => c.value === category)) errors.category = `Unknown category '${category}'.`;
  const r = reasonError(reason, "override");
  if (r !== undefined) errors.reason = r;
  return errors;
}

/** A correction needs a reason. */
export function validateCorrection(reason: string): Errors {
  const r = reasonError(reason, "correction");
  return r === undefined ? {} : { reason: r };
}

/** A board decision needs its category; the free text is bounded. */
export function validateDecision(category: string, text: string): Errors {
  const errors: Errors = {};
  if (category === "") errors.category = "Choose the board's category.";
  if (text.trim().length > MAX_FREE_TEXT) errors.text = `The text is at most ${MAX_FREE_TEXT} characters.`;
  return errors;
}

/** Members typed one per line or comma-separated, blanks dropped. */
export function parseMembers(value: string): string[] {
  return value
    .split(/[\n,;]/)
    .map((m) => m.trim())
    .filter((m) => m !== "");
}

/** A new board needs a valid date (YYYY-MM-DD) and a title; members are at most 128 characters. */
export function validateBoard(date: string, title: string, members: readonly string[]): Errors {
  const errors: Errors = {};
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const valid = m !== null && !Number.isNaN(Date.parse(`${date}T00:00:00Z`)) && new Date(`${date}T00:00:00Z`).toISOString().startsWith(date);
  if (!valid) errors.date = "Give the board's date as YYYY-MM-DD.";
  if (title.trim() === "") errors.title = "Give the board a title.";
  else if (title.trim().length > 256) errors.title = "The title is at most 256 characters.";
  if (members.some((x) => x.length > 128)) errors.members = "A member's name is at most 128 characters.";
  return errors;
}

export function hasErrors(errors: Errors): boolean {
  return Object.keys(errors).length > 0;
}

/** The message for a refused write: 403 means the user is not one of the node's write users. */
export function writeErrorText(status: number, message: string | undefined): string {
  if (status === 403) return "You may read but not change PancreasAI records: your Orthanc user is not one of the node's write users (PancreasAI.WriteUsers).";
  if (status === 409) return message ?? "The node refused this: the study has no AI result.";
  if (status === 404) return message ?? "Not found on the node (is the PancreasAI plugin installed?).";
  return message === undefined ? `The node answered HTTP ${status}.` : `The node refused this: ${message}`;
}
