import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { Fetcher } from "../src/api";
import { ApiError, BoardApi } from "../src/review/boardApi";
import {
  latestReview,
  parseBoards,
  parseCase,
  parseMembers,
  parseReviews,
  parseVocabulary,
  reviewLines,
  timeText,
  validateBoard,
  validateCorrection,
  validateDecision,
  validateOverride,
  writeErrorText,
} from "../src/review/model";
import { DecisionForm } from "../src/worklist/Boards";

/** `GET /pancreas-ai/vocabulary` as docs/tumor-board.md gives it (a part of it). */
const VOCABULARY = parseVocabulary({
  board_categories: [
    { value: "resectable", text: "Resectable" },
    { value: "borderline", text: "Borderline resectable" },
    { value: "locally-advanced", text: "Locally advanced" },
    { value: "metastatic", text: "Metastatic" },
  ],
  treatments: [
    { value: "upfront-surgery", text: "Upfront surgical resection" },
    { value: "neoadjuvant-then-surgery", text: "Neoadjuvant therapy, then re-staging for surgery" },
  ],
  review_verdicts: ["agree", "override", "correct"],
  notification_events: [],
});

const REVIEWS = {
  reviews: [
    { id: 1, verdict: "agree", ai_category: "borderline", category: null, reason: null, reviewer: "orthanc:dr.a", created_at: "2026-12-07T03:55:12+00:00", disagrees: false, job_id: "j1", correction: null },
    { id: 2, verdict: "override", ai_category: "borderline", category: "locally-advanced", reason: "SMA > 180°", reviewer: "orthanc:dr.b", created_at: "2026-12-07T04:01:00+00:00", disagrees: true, job_id: "j1", correction: null },
    {
      id: 3, verdict: "correct", ai_category: "borderline", category: null, reason: "uncinate", reviewer: "orthanc:dr.b", created_at: "2026-12-07T04:05:00+00:00", disagrees: false, job_id: "j1",
      correction: { state: "written", corrected_seg_sop_instance_uid: "1.2.3.9", amendment_sr_sop_instance_uid: "1.2.3.10", error: null },
    },
    { id: 4, verdict: "bogus" },
  ],
  boards: [],
};

describe("reviews from the plugin", () => {
  it("are parsed oldest first, unknown verdicts left out", () => {
    const reviews = parseReviews(REVIEWS);
    expect(reviews.map((r) => r.verdict)).toEqual(["agree", "override", "correct"]);
    expect(latestReview(reviews)?.id).toBe(3);
    expect(latestReview([])).toBeUndefined();
    expect(parseReviews({})).toEqual([]);
  });

  it("show verdict, reviewer, time, category (the vocabulary's words), reason and correction", () => {
    const [agree, override, correct] = parseReviews(REVIEWS);
    const a = reviewLines(agree!, VOCABULARY.boardCategories);
    expect(a).toMatchObject({ verdictText: "Agreed with the AI", reviewerText: "orthanc:dr.a", timeText: "2026-12-07 03:55 UTC", categoryText: "Borderline resectable", correctionText: undefined, disagrees: false });
    const o = reviewLines(override!, VOCABULARY.boardCategories);
    expect(o).toMatchObject({ verdictText: "Category overridden", categoryText: "Locally advanced", reason: "SMA > 180°", disagrees: true });
    const c = reviewLines(correct!, VOCABULARY.boardCategories);
    expect(c.correctionState).toBe("written");
    expect(c.correctionText).toBe("correction written: SEG 1.2.3.9");
    expect(c.correctedSegUid).toBe("1.2.3.9");
  });

  it("say a correction is pending until written, and why it failed", () => {
    const pending = parseReviews({ reviews: [{ ...REVIEWS.reviews[2], correction: { state: "pending" } }] })[0]!;
    expect(reviewLines(pending, []).correctionText).toMatch(/^correction pending/);
    const failed = parseReviews({ reviews: [{ ...REVIEWS.reviews[2], correction: { state: "failed", error: "frame size" } }] })[0]!;
    expect(reviewLines(failed, []).correctionText).toBe("correction failed: frame size");
    expect(timeText(undefined)).toBe("—");
  });
});

describe("form checks", () => {
  const categories = VOCABULARY.boardCategories;

  it("an override needs a known category and a reason", () => {
    expect(validateOverride("", "", categories)).toEqual({ category: "Choose your category.", reason: "Give a reason for the override." });
    expect(validateOverride("borderline", "   ", categories)).toEqual({ reason: "Give a reason for the override." });
    expect(validateOverride("stage-iv", "x", categories).category).toMatch(/Unknown category/);
    expect(validateOverride("metastatic", "liver lesion", categories)).toEqual({});
    expect(validateOverride("borderline", "x".repeat(4001), categories).reason).toMatch(/at most 4000/);
  });

  it("a correction needs a reason; a decision its category", () => {
    expect(validateCorrection("")).toEqual({ reason: "Give a reason for the correction." });
    expect(validateCorrection("tumor extends into the uncinate process")).toEqual({});
    expect(validateDecision("", "")).toEqual({ category: "Choose the board's category." });
    expect(validateDecision("resectable", "x".repeat(4001)).text).toMatch(/at most 4000/);
    expect(validateDecision("resectable", "")).toEqual({});
  });

  it("a board needs a real date and a title", () => {
    expect(validateBoard("", "", [])).toEqual({ date: "Give the board's date as YYYY-MM-DD.", title: "Give the board a title." });
    expect(validateBoard("2026-02-30", "HPB", []).date).toBeDefined();
    expect(validateBoard("2026-12-10", "HPB board", ["Dr A"])).toEqual({});
    expect(validateBoard("2026-12-10", "HPB", ["x".repeat(129)]).members).toMatch(/128/);
    expect(parseMembers("Dr A (surgery)\n\n Dr B , Dr C;")).toEqual(["Dr A (surgery)", "Dr B", "Dr C"]);
  });

  it("a refused write says why; 403 names the write users", () => {
    expect(writeErrorText(403, "forbidden")).toMatch(/not one of the node's write users/);
    expect(writeErrorText(409, undefined)).toMatch(/no AI result/);
    expect(writeErrorText(400, "frames[0]: the run lengths sum to 3")).toBe("The node refused this: frames[0]: the run lengths sum to 3");
  });
});

describe("BoardApi", () => {
  function recorder(status: number, answer: unknown): { fetcher: Fetcher; calls: Array<{ url: string; method: string; body: unknown }> } {
    const calls: Array<{ url: string; method: string; body: unknown }> = [];
    const fetcher: Fetcher = async (url, init) => {
      calls.push({ url, method: init?.method ?? "GET", body: init?.body === undefined ? undefined : JSON.parse(String(init.body)) });
      return new Response(JSON.stringify(answer), { status });
    };
    return { fetcher, calls };
  }

  it("posts a review and a correction to the documented routes", async () => {
    const { fetcher, calls } = recorder(201, REVIEWS.reviews[1]);
    const api = new BoardApi(fetcher);
    const review = await api.review("1.2.3", { verdict: "override", category: "locally-advanced", reason: "SMA" });
    expect(review.verdict).toBe("override");
    expect(calls[0]).toEqual({ url: "/pancreas-ai/studies/1.2.3/reviews", method: "POST", body: { verdict: "override", category: "locally-advanced", reason: "SMA" } });
    const correction = {
      reason: "r", category: null, based_on_seg_sop_instance_uid: "1.9", referenced_series_instance_uid: "1.8", rows: 2, columns: 2,
      frames: [{ sop_instance_uid: "1.8.1", rle: [[0, 4]] as [number, number][] }],
    };
    await api.correct("1.2.3", correction);
    expect(calls[1]).toEqual({ url: "/pancreas-ai/studies/1.2.3/corrections", method: "POST", body: correction });
  });

  it("adds, removes and decides board cases", async () => {
    const { fetcher, calls } = recorder(200, { board_id: 4, study_instance_uid: "1.2", decision: { category: "resectable", treatments: ["upfront-surgery"], category_text: "Resectable", treatment_texts: ["Upfront surgical resection"], text: null } });
    const api = new BoardApi(fetcher);
    await api.addCase(4, "1.2");
    await api.removeCase(4, "1.2");
    const decided = await api.decide(4, "1.2", { category: "resectable", treatments: ["upfront-surgery"], text: null });
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      "POST /pancreas-ai/boards/4/cases",
      "DELETE /pancreas-ai/boards/4/cases/1.2",
      "PUT /pancreas-ai/boards/4/cases/1.2/decision",
    ]);
    expect(calls[0]?.body).toEqual({ study_instance_uid: "1.2" });
    expect(decided?.decision?.treatmentTexts).toEqual(["Upfront surgical resection"]);
    expect(api.packetUrl(4)).toBe("/pancreas-ai/boards/4/packet.pdf");
    expect(api.decisionsCsvUrl(4)).toBe("/pancreas-ai/boards/4/decisions.csv");
  });

  it("turns a 403 into an ApiError a person can read", async () => {
    const api = new BoardApi(recorder(403, { error: "forbidden" }).fetcher);
    const refused = api.createBoard({ board_date: "2026-12-10", title: "HPB", members: [], auto_rule: null });
    await expect(refused).rejects.toBeInstanceOf(ApiError);
    await expect(refused).rejects.toMatchObject({ status: 403, message: expect.stringMatching(/write users/) });
  });

  it("reads boards and cases", () => {
    const boards = parseBoards({ boards: [{ id: 1, board_date: "2026-12-10", title: "HPB", members: ["Dr A"], case_count: 3, decided_count: 1, packet: { built_at: "x", url: "/pancreas-ai/boards/1/packet.pdf" } }, { id: "x" }] });
    expect(boards).toEqual([{ id: 1, boardDate: "2026-12-10", title: "HPB", members: ["Dr A"], caseCount: 3, decidedCount: 1, packetUrl: "/pancreas-ai/boards/1/packet.pdf" }]);
    expect(parseCase({ board_id: 1, study_instance_uid: "1.2", review: null, decision: null })).toMatchObject({ boardId: 1, review: undefined, decision: undefined });
  });
});

describe("decision form", () => {
  it("offers the vocabulary's categories and treatments", () => {
    const html = renderToStaticMarkup(<DecisionForm vocabulary={VOCABULARY} initial={undefined} busy={false} onSubmit={() => undefined} onCancel={() => undefined} />);
    for (const c of VOCABULARY.boardCategories) expect(html).toContain(`value="${c.value}"`);
    expect(html).toContain('data-testid="worklist-decision-treatment-upfront-surgery"');
    expect(html).toContain("Neoadjuvant therapy, then re-staging for surgery");
  });
});
