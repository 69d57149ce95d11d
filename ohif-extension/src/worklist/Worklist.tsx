/** The tumor-board worklist: a page of its own (its own React root, no host tree involved). */
import { useEffect, useMemo, useState } from "react";
import { loadWorklist } from "../api";
import { type CategoryLabel, LABELS } from "../labels";
import { nCellText, type NEstimate } from "../lymphNodes";
import { riskCellText, type RiskGroup } from "../prognosis";
import {
  type AiStatus,
  categoryText,
  type Decision,
  filterRows,
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
}

const COLUMNS: Array<{ key: SortKey; title: string }> = [
  { key: "patient", title: "Patient" },
  { key: "studyDate", title: "Study date" },
  { key: "aiStatus", title: "AI status" },
  { key: "category", title: "AI category" },
  { key: "pdac", title: "PDAC likelihood" },
  { key: "n", title: "N" },
  { key: "risk", title: "Risk" },
  { key: "boardDate", title: "Board date" },
  { key: "decision", title: "Reviewer decision" },
];

export function Worklist({ viewerBase, modeRoute, load = loadWorklist }: WorklistProps): JSX.Element {
  const [rows, setRows] = useState<WorklistRow[] | undefined>(undefined);
  const [source, setSource] = useState<string>("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: "studyDate", descending: true });
  const [filter, setFilter] = useState<WorklistFilter>({ text: "", aiStatus: "all", category: "all", decision: "all", nStatus: "all", risk: "all" });

  useEffect(() => {
    let cancelled = false;
    load().then(
      (page) => {
        if (cancelled) return;
        setRows(page.rows);
        setSource(page.source);
      },
      (e: unknown) => {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e));
      },
    );
    return () => {
      cancelled = true;
    };
  }, [load]);

  const shown = useMemo(
    () => (rows === undefined ? [] : sortRows(filterRows(rows, filter), sort.key, sort.descending)),
    [rows, filter, sort],
  );

  return (
    <div className="pai-worklist">
      <header>
        <h1>PancreasAI tumor-board worklist</h1>
        <p className="pai-notice" data-testid="worklist-notice">{LABELS.notice}</p>
      </header>
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
        <select data-testid="worklist-filter-decision" value={filter.decision} onChange={(e) => setFilter({ ...filter, decision: e.target.value as Decision | "all" })}>
          <option value="all">any decision</option>
          <option value="pending">pending</option>
          <option value="agree">agree</option>
          <option value="disagree">disagree</option>
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
          {shown.map((row) => (
            <tr key={row.studyUid} data-testid="worklist-row" data-study-uid={row.studyUid} data-category={row.category ?? ""} data-status={row.aiStatus}>
              <td>{row.patient}<div className="pai-muted">{row.description}</div></td>
              <td>{row.studyDate ?? "—"}</td>
              <td data-testid="worklist-status">
                {row.aiStatus}
                {row.reason !== undefined && <div className="pai-muted" data-testid="worklist-reason">{row.reason}</div>}
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
              <td>{row.boardDate ?? "—"}</td>
              <td>{row.decision === "none" ? "—" : `${row.decision}${row.reviewer === undefined ? "" : ` (${row.reviewer})`}`}</td>
              <td>
                <a data-testid="worklist-open" href={viewerUrl(viewerBase, modeRoute, row.studyUid)}>open in viewer</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
