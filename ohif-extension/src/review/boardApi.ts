/**
 * The tumor board's routes of the Orthanc plugin (docs/tumor-board.md), same-origin with
 * Orthanc (its basic authentication covers them). Every write goes through here: the extension
 * changes nothing but through these routes (ARCHITECTURE.md).
 */
import { DEFAULT_ENDPOINTS, type Endpoints, type Fetcher } from "../api";
import {
  type Board,
  type BoardCase,
  parseBoard,
  parseBoards,
  parseCase,
  parseReview,
  parseReviews,
  parseVocabulary,
  type Review,
  type Vocabulary,
  writeErrorText,
} from "./model";
import type { CorrectionFrame } from "./rle";

/** A refused or failed call: the HTTP status and the text a person reads. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

async function call(fetcher: Fetcher, method: string, url: string, body?: unknown): Promise<unknown> {
  const init: RequestInit = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers = { Accept: "application/json", "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const response = await fetcher(url, init);
  const raw = await response.text();
  let parsed: unknown;
  try {
    parsed = raw.trim() === "" ? undefined : (JSON.parse(raw) as unknown);
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const error = parsed !== null && typeof parsed === "object" ? (parsed as { error?: unknown }).error : undefined;
    throw new ApiError(response.status, writeErrorText(response.status, typeof error === "string" ? error : undefined));
  }
  return parsed;
}

/** The message of any failure (an ApiError's text, a network error's). */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export interface ReviewInput {
  verdict: "agree" | "override";
  category: string | null;
  reason: string | null;
}

export interface CorrectionInput {
  reason: string;
  category: string | null;
  based_on_seg_sop_instance_uid: string;
  referenced_series_instance_uid: string;
  rows: number;
  columns: number;
  frames: CorrectionFrame[];
}

export interface BoardInput {
  board_date: string;
  title: string;
  members: string[];
  auto_rule: null;
}

export interface DecisionInput {
  category: string;
  treatments: string[];
  text: string | null;
}

export class BoardApi {
  constructor(
    private readonly fetcher: Fetcher = (url, init) => fetch(url, init),
    private readonly endpoints: Endpoints = DEFAULT_ENDPOINTS,
  ) {}

  private url(path: string): string {
    return `${this.endpoints.plugin}${path}`;
  }

  private study(uid: string): string {
    return this.url(`/studies/${encodeURIComponent(uid)}`);
  }

  async vocabulary(): Promise<Vocabulary> {
    return parseVocabulary(await call(this.fetcher, "GET", this.url("/vocabulary")));
  }

  async reviews(studyUid: string): Promise<Review[]> {
    return parseReviews(await call(this.fetcher, "GET", `${this.study(studyUid)}/reviews`));
  }

  async review(studyUid: string, input: ReviewInput): Promise<Review> {
    const review = parseReview(await call(this.fetcher, "POST", `${this.study(studyUid)}/reviews`, input));
    if (review === undefined) throw new ApiError(500, "The node's answer holds no review.");
    return review;
  }

  async correct(studyUid: string, input: CorrectionInput): Promise<Review> {
    const review = parseReview(await call(this.fetcher, "POST", `${this.study(studyUid)}/corrections`, input));
    if (review === undefined) throw new ApiError(500, "The node's answer holds no review.");
    return review;
  }

  async boards(): Promise<Board[]> {
    return parseBoards(await call(this.fetcher, "GET", this.url("/boards")));
  }

  async createBoard(input: BoardInput): Promise<Board> {
    const board = parseBoard(await call(this.fetcher, "POST", this.url("/boards"), input));
    if (board === undefined) throw new ApiError(500, "The node's answer holds no board.");
    return board;
  }

  async boardCases(boardId: number): Promise<BoardCase[]> {
    const body = await call(this.fetcher, "GET", this.url(`/boards/${boardId}`));
    const cases = body !== null && typeof body === "object" ? (body as { cases?: unknown }).cases : undefined;
    return Array.isArray(cases) ? cases.map(parseCase).filter((c): c is BoardCase => c !== undefined) : [];
  }

  async addCase(boardId: number, studyUid: string): Promise<BoardCase | undefined> {
    return parseCase(await call(this.fetcher, "POST", this.url(`/boards/${boardId}/cases`), { study_instance_uid: studyUid }));
  }

  async removeCase(boardId: number, studyUid: string): Promise<void> {
    await call(this.fetcher, "DELETE", this.url(`/boards/${boardId}/cases/${encodeURIComponent(studyUid)}`));
  }

  async decide(boardId: number, studyUid: string, input: DecisionInput): Promise<BoardCase | undefined> {
    return parseCase(await call(this.fetcher, "PUT", this.url(`/boards/${boardId}/cases/${encodeURIComponent(studyUid)}/decision`), input));
  }

  packetUrl(boardId: number): string {
    return this.url(`/boards/${boardId}/packet.pdf`);
  }

  decisionsCsvUrl(boardId: number): string {
    return this.url(`/boards/${boardId}/decisions.csv`);
  }
}
