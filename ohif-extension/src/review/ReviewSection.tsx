/**
 * The panel's "Review" section (issue 26): the radiologist's current review of the node's
 * result, Agree / Override (the radiologist's category and a reason), and "Correct
 * segmentation": OHIF's own brush and eraser on the AI SEG, then "Save correction" posts the
 * edited label map (per CT image, run-length encoded) to the node, which writes the new SEG
 * version and the SR amendment. The browser writes no DICOM and nothing but through the API.
 */
import { useCallback, useEffect, useState } from "react";
import type { DisplaySet, Services } from "../ohifTypes";
import { ApiError, BoardApi, errorText } from "./boardApi";
import {
  BRUSH_TOOL,
  editTarget,
  ensureShown,
  ERASER_TOOL,
  paintableSegments,
  readLabelmap,
  startEditing,
  stopEditing,
  type LabelmapRead,
} from "./labelmap";
import {
  type Errors,
  hasErrors,
  latestReview,
  type Review,
  reviewLines,
  validateCorrection,
  validateOverride,
  type Vocabulary,
} from "./model";
import { correctionFrames } from "./rle";

export interface ReviewSectionProps {
  services: Services;
  studyUid: string;
  /** The AI's anatomical SEG as the viewer loaded it (the one a correction edits). */
  seg: DisplaySet | undefined;
  /** The segment a brush paints first (the tumor's). */
  defaultSegment: number | undefined;
  api?: BoardApi;
  /** Injected for tests; reads the viewer's labelmap by default. */
  read?: (services: Services, segmentationId: string) => LabelmapRead;
  /** How often a pending correction is asked for again, and for how long (ms). */
  pollMs?: number;
  pollForMs?: number;
}

type Mode = "idle" | "override" | "correct";

const DEFAULT_API = new BoardApi();

function FieldError({ id, errors, field }: { id: string; errors: Errors; field: string }): JSX.Element | null {
  const message = errors[field];
  return message === undefined ? null : (
    <div className="pai-field-error" role="alert" data-testid={id}>{message}</div>
  );
}

export function ReviewSection({
  services,
  studyUid,
  seg,
  defaultSegment,
  api = DEFAULT_API,
  read = readLabelmap,
  pollMs = 2000,
  pollForMs = 180000,
}: ReviewSectionProps): JSX.Element {
  const [vocabulary, setVocabulary] = useState<Vocabulary>({ boardCategories: [], treatments: [] });
  const [reviews, setReviews] = useState<Review[] | undefined>(undefined);
  const [loadError, setLoadError] = useState<string | undefined>(undefined);
  // Without the plugin's review routes (404) there is nothing to review against.
  const [unavailable, setUnavailable] = useState(false);
  const [mode, setMode] = useState<Mode>("idle");
  const [category, setCategory] = useState("");
  const [reason, setReason] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ kind: "error" | "info"; text: string } | undefined>(undefined);
  const [tool, setTool] = useState<string | undefined>(undefined);
  const [segment, setSegment] = useState<number | undefined>(defaultSegment);
  const target = editTarget(services, seg);

  const refresh = useCallback(
    () =>
      api.reviews(studyUid).then(
        (list) => {
          setReviews(list);
          setLoadError(undefined);
        },
        (e: unknown) => {
          if (e instanceof ApiError && e.status === 404) setUnavailable(true);
          else setLoadError(errorText(e));
        },
      ),
    [api, studyUid],
  );
  useEffect(() => {
    api.vocabulary().then(setVocabulary, () => undefined);
    void refresh();
  }, [api, refresh]);

  const current = reviews === undefined ? undefined : latestReview(reviews);
  const pending = current?.correction?.state === "pending";
  // A pending correction is asked for again until the node has written it (or given up).
  useEffect(() => {
    if (!pending) return undefined;
    const started = Date.now();
    const timer = setInterval(() => {
      if (Date.now() - started > pollForMs) clearInterval(timer);
      else void refresh();
    }, pollMs);
    return () => clearInterval(timer);
  }, [pending, refresh, pollMs, pollForMs]);
  // Leaving the section (or the study) gives the mouse back to window/level.
  useEffect(() => () => stopEditing(services), [services]);

  const open = (next: Mode): void => {
    setMode(next);
    setErrors({});
    setMessage(undefined);
    setReason("");
    setCategory("");
    if (next !== "correct" && tool !== undefined) {
      stopEditing(services);
      setTool(undefined);
    }
  };

  const submit = async (work: () => Promise<Review>, done: string): Promise<void> => {
    setBusy(true);
    setMessage(undefined);
    try {
      const review = await work();
      setReviews((list) => [...(list ?? []), review]);
      setMessage({ kind: "info", text: done });
      setMode("idle");
      if (tool !== undefined) {
        stopEditing(services);
        setTool(undefined);
      }
    } catch (e: unknown) {
      setMessage({ kind: "error", text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };

  const onAgree = (): void => {
    open("idle");
    void submit(() => api.review(studyUid, { verdict: "agree", category: null, reason: null }), "Agreement recorded.");
  };
  const onOverride = (): void => {
    const found = validateOverride(category, reason, vocabulary.boardCategories);
    setErrors(found);
    if (hasErrors(found)) return;
    void submit(
      () => api.review(studyUid, { verdict: "override", category, reason: reason.trim() }),
      "Override recorded.",
    );
  };
  const onTool = async (name: string): Promise<void> => {
    if (target === undefined || seg === undefined || !(await ensureShown(services, seg).catch(() => false))) {
      setMessage({ kind: "error", text: "The AI segmentation could not be loaded in the viewport." });
      return;
    }
    const index = segment ?? paintableSegments(services, target.segmentationId)[0]?.index;
    if (index === undefined || !startEditing(services, target, index, name)) {
      setMessage({ kind: "error", text: "OHIF's segmentation tools are not available in this viewport." });
      return;
    }
    setSegment(index);
    setTool(name);
    setMessage(undefined);
  };
  const onSegment = (value: number): void => {
    setSegment(value);
    if (target !== undefined && tool !== undefined) startEditing(services, target, value, tool);
  };
  const onSaveCorrection = (): void => {
    const found = validateCorrection(reason);
    setErrors(found);
    if (hasErrors(found) || target === undefined) return;
    let body;
    try {
      const map = read(services, target.segmentationId);
      body = {
        reason: reason.trim(),
        category: null,
        based_on_seg_sop_instance_uid: target.segSopInstanceUid,
        referenced_series_instance_uid: target.referencedSeriesInstanceUid,
        rows: map.rows,
        columns: map.columns,
        frames: correctionFrames(map.slices, map.ctSopOrder, map.rows, map.columns),
      };
    } catch (e: unknown) {
      setMessage({ kind: "error", text: `Could not read the edited segmentation: ${errorText(e)}` });
      return;
    }
    void submit(() => api.correct(studyUid, body), "Correction sent: the node writes the new SEG version.");
  };

  if (unavailable) {
    return (
      <section data-testid="pancreas-ai-review" data-state="unavailable">
        <h3>Review</h3>
        <p className="pai-muted">Reviews need the node's PancreasAI plugin in Orthanc.</p>
      </section>
    );
  }
  const lines = current === undefined ? undefined : reviewLines(current, vocabulary.boardCategories);
  const segments = target === undefined ? [] : paintableSegments(services, target.segmentationId);
  return (
    <section
      data-testid="pancreas-ai-review"
      data-state={loadError !== undefined ? "error" : reviews === undefined ? "loading" : "ready"}
      data-verdict={lines?.verdict ?? ""}
      data-correction={lines?.correctionState ?? ""}
      data-mode={mode}
      data-tool={tool ?? ""}
    >
      <h3>Review</h3>
      {loadError !== undefined && <p className="pai-warning" data-testid="pancreas-ai-review-error">{loadError}</p>}
      {lines === undefined ? (
        reviews !== undefined && <p className="pai-muted" data-testid="pancreas-ai-review-none">Not reviewed yet.</p>
      ) : (
        <div className="pai-kv" data-testid="pancreas-ai-review-current">
          <span>Review</span>
          <span data-testid="pancreas-ai-review-verdict" className={lines.disagrees ? "pai-review-disagrees" : undefined}>{lines.verdictText}</span>
          <span>Reviewer</span>
          <span data-testid="pancreas-ai-review-reviewer">{lines.reviewerText}, {lines.timeText}</span>
          <span>Category</span>
          <span data-testid="pancreas-ai-review-category">{lines.categoryText}</span>
          {lines.reason !== undefined && (
            <>
              <span>Reason</span>
              <span data-testid="pancreas-ai-review-reason">{lines.reason}</span>
            </>
          )}
          {lines.correctionText !== undefined && (
            <>
              <span>Correction</span>
              <span data-testid="pancreas-ai-review-correction" data-seg={lines.correctedSegUid ?? ""}>{lines.correctionText}</span>
            </>
          )}
        </div>
      )}
      <div className="pai-actions">
        <button type="button" data-testid="pancreas-ai-review-agree" disabled={busy} onClick={onAgree}>Agree</button>
        <button type="button" data-testid="pancreas-ai-review-override" disabled={busy} onClick={() => open(mode === "override" ? "idle" : "override")}>Override…</button>
        <button type="button" data-testid="pancreas-ai-review-correct" disabled={busy || target === undefined} onClick={() => open(mode === "correct" ? "idle" : "correct")}
          title={target === undefined ? "the AI segmentation is not loaded" : "edit the AI segmentation with OHIF's brush and eraser"}>
          Correct segmentation…
        </button>
      </div>
      {mode === "override" && (
        <div className="pai-form" data-testid="pancreas-ai-override-form">
          <label>
            Your category
            <select data-testid="pancreas-ai-override-category" value={category} onChange={(e) => setCategory(e.target.value)}>
              <option value="">— choose —</option>
              {vocabulary.boardCategories.map((c) => (
                <option key={c.value} value={c.value}>{c.text}</option>
              ))}
            </select>
          </label>
          <FieldError id="pancreas-ai-override-category-error" errors={errors} field="category" />
          <label>
            Reason
            <textarea data-testid="pancreas-ai-override-reason" rows={3} value={reason} onChange={(e) => setReason(e.target.value)} />
          </label>
          <FieldError id="pancreas-ai-override-reason-error" errors={errors} field="reason" />
          <button type="button" data-testid="pancreas-ai-override-submit" disabled={busy} onClick={onOverride}>Record override</button>
        </div>
      )}
      {mode === "correct" && (
        <div className="pai-form" data-testid="pancreas-ai-correct-form">
          <p className="pai-muted">Paint on the CT with OHIF's brush or eraser, then save with a reason. The node writes a new SEG version referencing the AI one.</p>
          <label>
            Segment
            <select data-testid="pancreas-ai-correct-segment" value={segment ?? ""} onChange={(e) => onSegment(Number(e.target.value))}>
              {segments.map((s) => (
                <option key={s.index} value={s.index}>{s.index}: {s.label}</option>
              ))}
            </select>
          </label>
          <div className="pai-actions">
            <button type="button" data-testid="pancreas-ai-correct-brush" aria-pressed={tool === BRUSH_TOOL} onClick={() => void onTool(BRUSH_TOOL)}>Brush</button>
            <button type="button" data-testid="pancreas-ai-correct-eraser" aria-pressed={tool === ERASER_TOOL} onClick={() => void onTool(ERASER_TOOL)}>Eraser</button>
          </div>
          <label>
            Reason
            <textarea data-testid="pancreas-ai-correct-reason" rows={3} value={reason} onChange={(e) => setReason(e.target.value)} />
          </label>
          <FieldError id="pancreas-ai-correct-reason-error" errors={errors} field="reason" />
          <div className="pai-actions">
            <button type="button" data-testid="pancreas-ai-correct-save" disabled={busy} onClick={onSaveCorrection}>Save correction</button>
            <button type="button" data-testid="pancreas-ai-correct-cancel" disabled={busy} onClick={() => open("idle")}>Cancel</button>
          </div>
        </div>
      )}
      {message !== undefined && (
        <p className={message.kind === "error" ? "pai-warning" : "pai-muted"} role={message.kind === "error" ? "alert" : "status"} data-testid="pancreas-ai-review-message" data-kind={message.kind}>
          {message.text}
        </p>
      )}
      <p className="pai-muted">Investigational, not for clinical use.</p>
    </section>
  );
}
