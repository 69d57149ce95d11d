/**
 * The worklist's tumor-board views (issue 26): the board selector with the board's packet and
 * decision CSV, the "New board" form, per row "Add to board" / "Remove from board", and the
 * board's decision form (category from the node's vocabulary, coded treatments, free text).
 * Every change goes through the plugin's routes (src/review/boardApi.ts).
 */
import { useState } from "react";
import type { BoardApi } from "../review/boardApi";
import { errorText } from "../review/boardApi";
import {
  type Board,
  type Errors,
  hasErrors,
  parseMembers,
  validateBoard,
  validateDecision,
  type Vocabulary,
} from "../review/model";
import type { WorklistRow } from "../viewModel";

function FieldError({ id, errors, field }: { id: string; errors: Errors; field: string }): JSX.Element | null {
  const message = errors[field];
  return message === undefined ? null : <span className="pai-field-error" role="alert" data-testid={id}>{message}</span>;
}

export function boardLabel(board: Pick<Board, "boardDate" | "title">): string {
  return `${board.boardDate} ${board.title}`;
}

export function BoardBar({
  api,
  boards,
  selected,
  onSelect,
  onCreated,
  onError,
}: {
  api: BoardApi;
  boards: Board[];
  selected: number | undefined;
  onSelect: (id: number | undefined) => void;
  onCreated: (board: Board) => void;
  onError: (message: string) => void;
}): JSX.Element {
  const [open, setOpen] = useState(false);
  const [date, setDate] = useState("");
  const [title, setTitle] = useState("");
  const [members, setMembers] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const board = boards.find((b) => b.id === selected);

  const create = (): void => {
    const list = parseMembers(members);
    const found = validateBoard(date, title, list);
    setErrors(found);
    if (hasErrors(found)) return;
    setBusy(true);
    api.createBoard({ board_date: date, title: title.trim(), members: list, auto_rule: null }).then(
      (created) => {
        setBusy(false);
        setOpen(false);
        setDate("");
        setTitle("");
        setMembers("");
        onCreated(created);
      },
      (e: unknown) => {
        setBusy(false);
        onError(errorText(e));
      },
    );
  };

  return (
    <div className="pai-boards" data-testid="worklist-boards">
      <label>
        Board{" "}
        <select
          data-testid="worklist-board-select"
          value={selected === undefined ? "" : String(selected)}
          onChange={(e) => onSelect(e.target.value === "" ? undefined : Number(e.target.value))}
        >
          <option value="">all studies</option>
          {boards.map((b) => (
            <option key={b.id} value={String(b.id)}>
              {boardLabel(b)} ({b.decidedCount}/{b.caseCount} decided)
            </option>
          ))}
        </select>
      </label>
      {board !== undefined && (
        <span className="pai-board-links">
          <a data-testid="worklist-board-packet" href={api.packetUrl(board.id)} target="_blank" rel="noreferrer" title={board.packetUrl === undefined ? "the node has not built this board's packet yet" : undefined}>
            board packet (PDF)
          </a>{" "}
          <a data-testid="worklist-board-csv" href={api.decisionsCsvUrl(board.id)}>decisions (CSV)</a>
          {board.members.length > 0 && <span className="pai-muted"> · {board.members.join(", ")}</span>}
        </span>
      )}
      <button type="button" data-testid="worklist-new-board" onClick={() => setOpen(!open)}>New board…</button>
      {open && (
        <div className="pai-form pai-inline-form" data-testid="worklist-new-board-form">
          <label>
            Date <input type="date" data-testid="worklist-new-board-date" value={date} onChange={(e) => setDate(e.target.value)} />
          </label>
          <FieldError id="worklist-new-board-date-error" errors={errors} field="date" />
          <label>
            Title <input data-testid="worklist-new-board-title" value={title} onChange={(e) => setTitle(e.target.value)} />
          </label>
          <FieldError id="worklist-new-board-title-error" errors={errors} field="title" />
          <label>
            Members (one per line)
            <textarea data-testid="worklist-new-board-members" rows={2} value={members} onChange={(e) => setMembers(e.target.value)} />
          </label>
          <FieldError id="worklist-new-board-members-error" errors={errors} field="members" />
          <button type="button" data-testid="worklist-new-board-submit" disabled={busy} onClick={create}>Create board</button>
        </div>
      )}
    </div>
  );
}

/** The row's board cell: the board it is on (and "Remove"), or a board to add it to. */
export function BoardCell({
  row,
  boards,
  busy,
  onAdd,
  onRemove,
}: {
  row: WorklistRow;
  boards: Board[];
  busy: boolean;
  onAdd: (boardId: number) => void;
  onRemove: (boardId: number) => void;
}): JSX.Element {
  const [choice, setChoice] = useState<string>("");
  if (row.boardId !== undefined) {
    const boardId = row.boardId;
    return (
      <span data-testid="worklist-board" data-board-id={boardId}>
        {row.boardDate ?? "—"} {row.boardTitle ?? ""}{" "}
        <button type="button" data-testid="worklist-remove-board" disabled={busy} onClick={() => onRemove(boardId)}>Remove from board</button>
      </span>
    );
  }
  return (
    <span data-testid="worklist-board" data-board-id="">
      <select data-testid="worklist-add-board-select" value={choice} onChange={(e) => setChoice(e.target.value)}>
        <option value="">— board —</option>
        {boards.map((b) => (
          <option key={b.id} value={String(b.id)}>{boardLabel(b)}</option>
        ))}
      </select>{" "}
      <button type="button" data-testid="worklist-add-board" disabled={busy || choice === ""} onClick={() => onAdd(Number(choice))}>Add to board</button>
    </span>
  );
}

export interface DecisionValues {
  category: string;
  treatments: string[];
  text: string;
}

/** The board's decision on one case. */
export function DecisionForm({
  vocabulary,
  initial,
  busy,
  onSubmit,
  onCancel,
}: {
  vocabulary: Vocabulary;
  initial: DecisionValues | undefined;
  busy: boolean;
  onSubmit: (values: DecisionValues) => void;
  onCancel: () => void;
}): JSX.Element {
  const [category, setCategory] = useState(initial?.category ?? "");
  const [treatments, setTreatments] = useState<string[]>(initial?.treatments ?? []);
  const [text, setText] = useState(initial?.text ?? "");
  const [errors, setErrors] = useState<Errors>({});
  const toggle = (value: string): void =>
    setTreatments((list) => (list.includes(value) ? list.filter((t) => t !== value) : [...list, value]));
  const submit = (): void => {
    const found = validateDecision(category, text);
    setErrors(found);
    if (!hasErrors(found)) onSubmit({ category, treatments, text });
  };
  return (
    <div className="pai-form" data-testid="worklist-decision-form">
      <label>
        Board's category
        <select data-testid="worklist-decision-category" value={category} onChange={(e) => setCategory(e.target.value)}>
          <option value="">— choose —</option>
          {vocabulary.boardCategories.map((c) => (
            <option key={c.value} value={c.value}>{c.text}</option>
          ))}
        </select>
      </label>
      <FieldError id="worklist-decision-category-error" errors={errors} field="category" />
      <fieldset className="pai-treatments">
        <legend>Treatment</legend>
        {vocabulary.treatments.map((t) => (
          <label key={t.value} className="pai-check">
            <input type="checkbox" data-testid={`worklist-decision-treatment-${t.value}`} checked={treatments.includes(t.value)} onChange={() => toggle(t.value)} /> {t.text}
          </label>
        ))}
      </fieldset>
      <label>
        Notes
        <textarea data-testid="worklist-decision-text" rows={2} value={text} onChange={(e) => setText(e.target.value)} />
      </label>
      <FieldError id="worklist-decision-text-error" errors={errors} field="text" />
      <span className="pai-actions">
        <button type="button" data-testid="worklist-decision-submit" disabled={busy} onClick={submit}>Record decision</button>
        <button type="button" data-testid="worklist-decision-cancel" onClick={onCancel}>Cancel</button>
      </span>
    </div>
  );
}
