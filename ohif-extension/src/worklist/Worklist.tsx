/** The tumor-board worklist: a page of its own (its own React root, no host tree involved). */
import { useCallback, useEffect, useMemo, useState } from "react";
import { loadWorklist } from "../api";
import { BoardApi, errorText } from "../review/boardApi";
import { type Board, type BoardCase, choiceText, type Vocabulary } from "../review/model";
import { BoardBar, BoardCell, DecisionForm, type DecisionValues } from "./Boards";
import { type CategoryLabel, LABELS } from "../labels";
import { nCellText, type NEstimate } from "../lymphNodes";
import { riskCellText, type RiskGroup } from "../prognosis";
import {
  type AiStatus,
  categoryText,
  type Decision,
  decisionCellText,
  filterRows,
  reasonCellText,
  reviewCellText,
  type ReviewWord,
  type SortKey,
  sortRows,
  STATUS_TEXT,
  STATUS_WORDS,
  viewerUrl,
  type WorklistFilter,
  type WorklistRow,
} from "../viewModel";

export interface WorklistProps {
  viewerBase: string;
  modeRoute: string;
  load?: typeof loadWorklist;
  api?: BoardApi;
}

const DEFAULT_API = new BoardApi();

/** Rows with the board's full decisions (category and treatment texts, notes) where it has one. */
export function withBoardDecisions(rows: WorklistRow[], cases: readonly BoardCase[]): WorklistRow[] {
  const byStudy = new Map(cases.map((c) => [c.studyInstanceUid, c.decision]));
  return rows.map((row) => {
    const d = byStudy.get(row.studyUid);
    if (d === undefined) return row;
    return {
      ...row,
      decision: "decided",
      decisionInfo: { category: d.category, categoryText: d.categoryText, treatmentTexts: d.treatmentTexts, text: d.text, decidedBy: d.decidedBy },
      decisionTreatments: d.treatments,
    };
  });
}

const COLUMNS: Array<{ key: SortKey; title: string }> = [
  { key: "patient", title: "Patient" },
  { key: "studyDate", title: "Study date" },
  { key: "aiStatus", title: "AI status" },
  { key: "category", title: "AI category" },
  { key: "pdac", title: "PDAC likelihood" },
  { key: "n", title: "N" },
  { key: "risk", title: "Risk" },
  { key: "boardDate", title: "Board" },
  { key: "review", title: "Review" },
  { key: "decision", title: "Board decision" },
];

export function Worklist({ viewerBase, modeRoute, load = loadWorklist, api = DEFAULT_API }: WorklistProps): JSX.Element {
  const [rows, setRows] = useState<WorklistRow[] | undefined>(undefined);
  const [source, setSource] = useState<string>("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: "studyDate", descending: true });
  const [filter, setFilter] = useState<WorklistFilter>({ text: "", aiStatus: "all", category: "all", decision: "all", review: "all", nStatus: "all", risk: "all" });
  const [boards, setBoards] = useState<Board[]>([]);
  const [board, setBoard] = useState<number | undefined>(undefined);
  const [vocabulary, setVocabulary] = useState<Vocabulary>({ boardCategories: [], treatments: [] });
  const [deciding, setDeciding] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ kind: "error" | "info"; text: string } | undefined>(undefined);
  const [generation, setGeneration] = useState(0);

  const reloadBoards = useCallback(() => {
    api.boards().then(setBoards, () => setBoards([])); // no plugin: no boards, the list still works
  }, [api]);
  useEffect(() => {
    reloadBoards();
    api.vocabulary().then(setVocabulary, () => undefined);
  }, [api, reloadBoards]);

  useEffect(() => {
    let cancelled = false;
    setRows(undefined);
    // With a board chosen, its cases add what the worklist summary leaves out (treatments, notes).
    const cases = board === undefined ? Promise.resolve([]) : api.boardCases(board).catch(() => []);
    Promise.all([load(undefined, undefined, board === undefined ? {} : { board }), cases]).then(
      ([page, boardCases]) => {
        if (cancelled) return;
        setRows(withBoardDecisions(page.rows, boardCases));
        setSource(page.source);
        setError(undefined);
      },
      (e: unknown) => {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e));
      },
    );
    return () => {
      cancelled = true;
    };
  }, [load, api, board, generation]);

  /** Run one write; on success reload the list and the boards' counts, else show why. */
  const write = (work: () => Promise<unknown>, done: string): void => {
    setBusy(true);
    setMessage(undefined);
    work().then(
      () => {
        setBusy(false);
        setMessage({ kind: "info", text: done });
        setDeciding(undefined);
        setGeneration((g) => g + 1);
        reloadBoards();
      },
      (e: unknown) => {
        setBusy(false);
        setMessage({ kind: "error", text: errorText(e) });
      },
    );
  };
  const onDecide = (row: WorklistRow, values: DecisionValues): void => {
    if (row.boardId === undefined) return;
    const boardId = row.boardId;
    write(
      () => api.decide(boardId, row.studyUid, { category: values.category, treatments: values.treatments, text: values.text.trim() === "" ? null : values.text.trim() }),
      "Decision recorded.",
    );
  };

  const shown = useMemo(
    () => (rows === undefined ? [] : sortRows(filterRows(rows, filter), sort.key, sort.descending)),
    [rows, filter, sort],
  );
  const columnCount = COLUMNS.length + 1;

  return (
    <div className="pai-worklist">
      <header>
        <h1>PancreasAI tumor-board worklist</h1>
        <p className="pai-notice" data-testid="worklist-notice">{LABELS.notice}</p>
      </header>
      <BoardBar
        api={api}
        boards={boards}
        selected={board}
        onSelect={setBoard}
        onCreated={(created) => {
          setBoards((list) => [...list.filter((b) => b.id !== created.id), created]);
          setBoard(created.id);
          setMessage({ kind: "info", text: `Board "${created.title}" created.` });
        }}
        onError={(text) => setMessage({ kind: "error", text })}
      />
      {message !== undefined && (
        <p className={message.kind === "error" ? "pai-warning" : "pai-muted"} role={message.kind === "error" ? "alert" : "status"} data-testid="worklist-message" data-kind={message.kind}>
          {message.text}
        </p>
      )}
      <div className="pai-filters">
        <input
          data-testid="worklist-filter-text"
          placeholder="Filter patient, description, UID"
          value={filter.text ?? ""}
          onChange={(e) => setFilter({ ...filter, text: e.target.value })}
        />
        <select data-testid="worklist-filter-status" value={filter.aiStatus} onChange={(e) => setFilter({ ...filter, aiStatus: e.target.value as AiStatus | "all" })}>
          <option value="all">any AI status</option>
          {STATUS_WORDS.map((word) => (
            <option key={word} value={word}>{STATUS_TEXT[word]}</option>
          ))}
        </select>
        <select data-testid="worklist-filter-category" value={filter.category} onChange={(e) => setFilter({ ...filter, category: e.target.value as CategoryLabel | "none" | "all" })}>
          <option value="all">any category</option>
          {LABELS.categories.map((c) => (
            <option key={c} value={c}>{categoryText(c)}</option>
          ))}
          <option value="none">no category</option>
        </select>
        <select
          data-testid="worklist-filter-pdac"
          value={filter.minPdac === undefined ? "all" : String(filter.minPdac)}
          onChange={(e) => setFilter({ ...filter, minPdac: e.target.value === "all" ? undefined : Number(e.target.value) })}
        >
          <option value="all">any PDAC likelihood</option>
          <option value="0.5">PDAC likelihood ≥ 0.5</option>
          <option value="0.9">PDAC likelihood ≥ 0.9</option>
        </select>
        <select
          data-testid="worklist-filter-n"
          value={filter.nStatus ?? "all"}
          onChange={(e) => setFilter({ ...filter, nStatus: e.target.value as NEstimate | "all" })}
        >
          <option value="all">any N estimate</option>
          <option value="N+">N+ (node metastasis suspected)</option>
          <option value="N0">N0</option>
        </select>
        <select
          data-testid="worklist-filter-risk"
          value={filter.risk ?? "all"}
          onChange={(e) => setFilter({ ...filter, risk: e.target.value as RiskGroup | "all" })}
        >
          <option value="all">any survival risk</option>
          <option value="high">high survival risk</option>
          <option value="low">low survival risk</option>
        </select>
        <select data-testid="worklist-filter-review" value={filter.review ?? "all"} onChange={(e) => setFilter({ ...filter, review: e.target.value as ReviewWord | "all" })}>
          <option value="all">any review</option>
          <option value="agree">agreed</option>
          <option value="override">overridden</option>
          <option value="correct">segmentation corrected</option>
          <option value="none">not reviewed</option>
        </select>
        <select data-testid="worklist-filter-decision" value={filter.decision} onChange={(e) => setFilter({ ...filter, decision: e.target.value as Decision | "all" })}>
          <option value="all">any decision</option>
          <option value="pending">decision pending</option>
          <option value="decided">decided</option>
          <option value="none">not on a board</option>
        </select>
        <span className="pai-muted" data-testid="worklist-source">{source === "" ? "" : `source: ${source}`}</span>
      </div>
      {error !== undefined && <p className="pai-warning" data-testid="worklist-error">{error}</p>}
      <table className="pai-table" data-testid="worklist-table" data-state={rows === undefined ? "loading" : "ready"}>
        <thead>
          <tr>
            {COLUMNS.map((c) => (
              <th key={c.key}>
                <button
                  type="button"
                  data-testid={`worklist-sort-${c.key}`}
                  onClick={() => setSort({ key: c.key, descending: sort.key === c.key ? !sort.descending : false })}
                >
                  {c.title}
                  {sort.key === c.key ? (sort.descending ? " ▼" : " ▲") : ""}
                </button>
              </th>
            ))}
            <th>Open</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((row) => {
            const reason = reasonCellText(row);
            return [
            <tr key={row.studyUid} data-testid="worklist-row" data-study-uid={row.studyUid} data-category={row.category ?? ""} data-status={row.aiStatus} data-board-id={row.boardId ?? ""} data-review={row.review?.verdict ?? "none"} data-decision={row.decision}>
              <td>{row.patient}<div className="pai-muted">{row.description}</div></td>
              <td>{row.studyDate ?? "—"}</td>
              <td data-testid="worklist-status">
                {row.aiStatus}
                {reason !== undefined && <div className="pai-muted" data-testid="worklist-reason">{reason}</div>}
              </td>
              <td data-testid="worklist-category">{categoryText(row.category)}</td>
              <td data-testid="worklist-pdac">{row.pdacLikelihood === undefined ? "—" : row.pdacLikelihood.toFixed(2)}</td>
              <td data-testid="worklist-n" data-n={row.nEstimate ?? ""} data-value={row.nPositiveProbability ?? ""}>
                {nCellText(row.nEstimate, row.nPositiveProbability)}
              </td>
              <td
                data-testid="worklist-risk"
                data-risk={row.riskGroup ?? ""}
                data-value={row.deathProbability3y ?? ""}
                className={row.riskGroup === "high" ? "pai-risk-high" : undefined}
                title="survival risk group and probability of death by 3 years (investigational)"
              >
                {riskCellText(row.riskGroup, row.deathProbability3y)}
              </td>
              <td>
                {source !== "plugin" ? (
                  row.boardDate ?? "—"
                ) : (
                <BoardCell
                  row={row}
                  boards={boards}
                  busy={busy}
                  onAdd={(boardId) => write(() => api.addCase(boardId, row.studyUid), "Added to the board.")}
                  onRemove={(boardId) => write(() => api.removeCase(boardId, row.studyUid), "Removed from the board.")}
                />
                )}
              </td>
              <td data-testid="worklist-review" data-review={row.review?.verdict ?? "none"}>
                {reviewCellText(row.review, (v) => choiceText(vocabulary.boardCategories, v))}
              </td>
              <td data-testid="worklist-decision" data-decision={row.decision}>
                {decisionCellText(row, (v) => choiceText(vocabulary.boardCategories, v))}
                {row.decisionInfo?.text !== undefined && <div className="pai-muted">{row.decisionInfo.text}</div>}
                {row.boardId !== undefined && (
                  <div>
                    <button type="button" data-testid="worklist-decide" onClick={() => setDeciding(deciding === row.studyUid ? undefined : row.studyUid)}>
                      {row.decision === "decided" ? "Change decision…" : "Decide…"}
                    </button>
                  </div>
                )}
              </td>
              <td>
                <a data-testid="worklist-open" href={viewerUrl(viewerBase, modeRoute, row.studyUid)}>open in viewer</a>
              </td>
            </tr>,
            deciding === row.studyUid && row.boardId !== undefined ? (
              <tr key={`${row.studyUid}-decision`} data-testid="worklist-decision-row">
                <td colSpan={columnCount}>
                  <DecisionForm
                    vocabulary={vocabulary}
                    busy={busy}
                    initial={row.decisionInfo === undefined ? undefined : { category: row.decisionInfo.category, treatments: row.decisionTreatments ?? [], text: row.decisionInfo.text ?? "" }}
                    onSubmit={(values) => onDecide(row, values)}
                    onCancel={() => setDeciding(undefined)}
                  />
                </td>
              </tr>
            ) : null,
            ];
          })}
        </tbody>
      </table>
    </div>
  );
}
