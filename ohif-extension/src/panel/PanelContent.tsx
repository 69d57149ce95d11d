/**
 * The panel's content. It is rendered by the extension's own React root (see PanelHost.ts), so
 * its hooks belong to the extension's React and never run inside the host's tree.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { loadResult, loadStudyStatus } from "../api";
import { isLesionSeg, lesionButtonText, lesionSegOf, lesionSegmentNumbers, nextLesion, type LesionState } from "../lesions";
import { isNodeSeg, type LymphNodeAssessment, nEstimateText, nodeRows, nodeSegmentFor, nodeSegOf, type NodeRow, type NodeState } from "../lymphNodes";
import type { DisplaySet, Services } from "../ohifTypes";
import type { PancreasResult } from "../result";
import { PrognosisSection } from "./PrognosisSection";
import { DEFAULT_JUMP_TIMING, jumpToSegmentWhenReady, type JumpTiming } from "./segmentJump";
import { ReviewSection } from "../review/ReviewSection";
import { noResultLines, panelViewModel, type StudyStatusInfo, type VesselRow } from "../viewModel";

export interface PanelContentProps {
  services: Services;
  studyUid: string | undefined;
  /** Injected for tests; the browser's fetch by default. */
  load?: (studyUid: string) => Promise<PancreasResult | undefined>;
  /** The study's status and reason when there is no result (the plugin's results route). */
  loadStatus?: (studyUid: string) => Promise<StudyStatusInfo | undefined>;
}

type State =
  | { kind: "waiting" }
  | { kind: "loading"; studyUid: string }
  | { kind: "none"; studyUid: string; status?: StudyStatusInfo | undefined }
  | { kind: "error"; message: string }
  | { kind: "ready"; result: PancreasResult };

function segDisplaySet(services: Services, result: PancreasResult): DisplaySet | undefined {
  const segs = services.displaySetService
    .getActiveDisplaySets()
    .filter((ds) => ds.Modality === "SEG" && !isLesionSeg(ds) && !isNodeSeg(ds));
  const wanted = Object.values(result.segments).find((s) => s?.segSopInstanceUid !== undefined)?.segSopInstanceUid;
  return segs.find((ds) => ds.instances?.some((i) => i.SOPInstanceUID === wanted)) ?? segs[0];
}

/**
 * Show and highlight one segment of the analysis SEG: make it active, jump to its centre and flash
 * it, as soon as OHIF can (`jumpToSegmentWhenReady`). Returns the cancel of a jump still waiting,
 * undefined when the SEG is not loaded.
 */
export function highlightSegment(
  services: Services,
  result: PancreasResult,
  segmentNumber: number,
  timing: JumpTiming = DEFAULT_JUMP_TIMING,
): (() => void) | undefined {
  const segmentation = services.segmentationService;
  const seg = segDisplaySet(services, result);
  if (segmentation === undefined || seg === undefined) return undefined;
  const loaded = segmentation.getSegmentations().some((s) => s.segmentationId === seg.displaySetInstanceUID);
  if (!loaded) return undefined;
  return jumpToSegmentWhenReady(services, seg.displaySetInstanceUID, segmentNumber, timing);
}

/**
 * Show the detector's lesion SEG over the CT in the active viewport, as a second labelmap beside
 * the anatomical SEG (loaded on first use, as OHIF loads an overlay display set: `load`, then a
 * representation in the viewport), make lesion `wanted` (default: the first) active and jump to
 * it. Returns the lesion shown, undefined when there is nothing to show.
 */
export async function showLesion(
  services: Services,
  lesionSeg: DisplaySet,
  wanted?: number,
): Promise<{ shown: number; numbers: number[] } | undefined> {
  const segmentation = services.segmentationService;
  const viewportId = services.viewportGridService?.getState().activeViewportId ?? undefined;
  if (segmentation === undefined || viewportId === undefined) return undefined;
  const id = lesionSeg.displaySetInstanceUID;
  if (segmentation.getSegmentation(id) === undefined) {
    if (lesionSeg.load === undefined) return undefined;
    await lesionSeg.load({ headers: services.userAuthenticationService?.getAuthorizationHeader() ?? {} });
  }
  if (segmentation.getSegmentation(id) === undefined) return undefined;
  if (segmentation.getSegmentationRepresentations(viewportId, { segmentationId: id }).length === 0) {
    await segmentation.addSegmentationRepresentation(viewportId, { segmentationId: id, type: "Labelmap" });
  }
  const numbers = lesionSegmentNumbers(segmentation.getSegmentation(id)?.segments);
  const shown = wanted !== undefined && numbers.includes(wanted) ? wanted : numbers[0];
  if (shown === undefined) return undefined;
  segmentation.setActiveSegment(id, shown);
  segmentation.jumpToSegmentCenter(id, shown, viewportId, 0.9, true, 400, false);
  return { shown, numbers };
}

/**
 * Move the active viewport's slice to `lps` (DICOM patient coordinates, mm: cornerstone's world
 * coordinates), as the detection lesion jump brings its lesion into view. False when the
 * viewport cannot jump.
 */
export function jumpToPoint(services: Services, lps: [number, number, number]): boolean {
  const viewportId = services.viewportGridService?.getState().activeViewportId ?? undefined;
  if (viewportId === undefined) return false;
  const viewport = services.cornerstoneViewportService?.getCornerstoneViewport(viewportId) ?? undefined;
  if (viewport?.jumpToWorld === undefined) return false;
  const moved = viewport.jumpToWorld(lps);
  viewport.render?.();
  return moved;
}

/**
 * Show one lymph node: when the study holds the node SEG, load it as a further labelmap over the
 * CT in the active viewport (as `showLesion` does; the anatomical SEG stays) and make the node's
 * segment active; then jump the viewport to the node's centre (LPS), or, for a node the SR gives
 * by its segment only, to that segment's centre. Returns whether the viewport jumped and the
 * node SEG segment made active (undefined without a node SEG or segment).
 */
export async function showNode(
  services: Services,
  node: Pick<NodeRow, "nodeId" | "suspicious" | "centreLps" | "segmentNumber">,
  nodeSeg: DisplaySet | undefined,
): Promise<{ jumped: boolean; segment: number | undefined }> {
  const segmentation = services.segmentationService;
  const viewportId = services.viewportGridService?.getState().activeViewportId ?? undefined;
  let segment: number | undefined;
  if (nodeSeg !== undefined && segmentation !== undefined && viewportId !== undefined) {
    const id = nodeSeg.displaySetInstanceUID;
    if (segmentation.getSegmentation(id) === undefined && nodeSeg.load !== undefined) {
      await nodeSeg.load({ headers: services.userAuthenticationService?.getAuthorizationHeader() ?? {} });
    }
    if (segmentation.getSegmentation(id) !== undefined) {
      if (segmentation.getSegmentationRepresentations(viewportId, { segmentationId: id }).length === 0) {
        await segmentation.addSegmentationRepresentation(viewportId, { segmentationId: id, type: "Labelmap" });
      }
      const segments = segmentation.getSegmentation(id)?.segments;
      const referenced = node.segmentNumber !== undefined && segments?.[String(node.segmentNumber)] !== undefined;
      segment = referenced ? node.segmentNumber : nodeSegmentFor(segments, node);
      if (segment !== undefined) segmentation.setActiveSegment(id, segment);
      if (node.centreLps === undefined && segment !== undefined) {
        segmentation.jumpToSegmentCenter(id, segment, viewportId, 0.9, true, 400, false);
        return { jumped: true, segment };
      }
    }
  }
  return { jumped: node.centreLps !== undefined && jumpToPoint(services, node.centreLps), segment };
}

function NodeList({
  assessment,
  selected,
  state,
  nodeSeg,
  onSelect,
}: {
  assessment: LymphNodeAssessment | undefined;
  selected: string | undefined;
  state: { state: NodeState; nodeId?: number; segment?: number };
  nodeSeg: DisplaySet | undefined;
  onSelect: (row: NodeRow) => void;
}): JSX.Element {
  const rows = nodeRows(assessment);
  return (
    <section
      data-testid="pancreas-ai-nodes"
      data-state={state.state}
      data-node={state.nodeId ?? ""}
      data-segment={state.segment ?? ""}
      data-segmentation-id={nodeSeg?.displaySetInstanceUID ?? ""}
    >
      <h3>Lymph nodes</h3>
      <div className="pai-kv">
        <span>N estimate</span>
        <span data-testid="pancreas-ai-n-estimate" data-n={assessment?.nEstimate ?? ""} data-value={assessment?.nPositiveProbability ?? ""}>
          {nEstimateText(assessment)}
        </span>
      </div>
      {rows.length > 0 && (
        <table className="pai-table" data-testid="pancreas-ai-node-list">
          <thead>
            <tr><th /><th>Station</th><th>Short axis</th><th>p(metastasis)</th></tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr
                key={row.key}
                data-testid={`pancreas-ai-node-${row.nodeId}`}
                data-station={row.stationText}
                data-suspicious={row.suspicious ? "true" : "false"}
                aria-selected={selected === row.key}
                className={selected === row.key ? "pai-selected" : undefined}
                onClick={() => onSelect(row)}
                title={`${row.stationTitle}: show this node on the CT`}
              >
                <td className={row.suspicious ? "pai-node-suspicious" : "pai-muted"} title={row.suspicious ? "suspicious" : "not suspicious"}>
                  {row.marker}
                </td>
                <td>{row.stationText}</td>
                <td data-testid={`pancreas-ai-node-${row.nodeId}-short-axis`}>{row.shortAxisText}</td>
                <td data-testid={`pancreas-ai-node-${row.nodeId}-probability`}>
                  {row.probabilityText}
                  {row.suspicious ? <span className="pai-node-suspicious"> suspicious</span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const LEVEL_CLASS: Record<VesselRow["level"], string> = {
  none: "pai-level-none",
  borderline: "pai-level-br",
  "locally advanced": "pai-level-la",
};

export function PanelContent({
  services,
  studyUid,
  load = loadResult,
  loadStatus = loadStudyStatus,
}: PanelContentProps): JSX.Element {
  const [state, setState] = useState<State>(studyUid === undefined ? { kind: "waiting" } : { kind: "loading", studyUid });
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [lesion, setLesion] = useState<{ state: LesionState; shown?: number; numbers: number[] }>({
    state: "idle",
    numbers: [],
  });
  const [node, setNode] = useState<{ state: NodeState; nodeId?: number; segment?: number }>({ state: "idle" });
  const displaySets = services.displaySetService.getActiveDisplaySets();
  const lesionSeg = lesionSegOf(displaySets);
  const nodeSeg = nodeSegOf(displaySets, state.kind === "ready" ? state.result.lymphNodes?.segSopInstanceUid : undefined);

  useEffect(() => {
    if (studyUid === undefined) return undefined;
    let cancelled = false;
    setState({ kind: "loading", studyUid });
    load(studyUid).then(
      (result) => {
        if (cancelled) return;
        if (result !== undefined) {
          setState({ kind: "ready", result });
          return;
        }
        // No result: the plugin (or the node's outcome document) says why: refused with its
        // numbers, failed, skipped, pending. The panel stays "loading" until it has asked, so it
        // never flashes "no result yet" for a study the node refused.
        loadStatus(studyUid).then(
          (status) => {
            if (!cancelled) setState({ kind: "none", studyUid, status });
          },
          () => {
            if (!cancelled) setState({ kind: "none", studyUid });
          },
        );
      },
      (error: unknown) => {
        if (!cancelled) setState({ kind: "error", message: error instanceof Error ? error.message : String(error) });
      },
    );
    return () => {
      cancelled = true;
    };
  }, [studyUid, load, loadStatus]);

  const view = useMemo(() => (state.kind === "ready" ? panelViewModel(state.result) : undefined), [state]);
  // A jump still waiting for OHIF (see segmentJump.ts) is dropped by the next selection.
  const pendingJump = useRef<(() => void) | undefined>(undefined);
  useEffect(() => () => pendingJump.current?.(), []);
  const select = useCallback((key: string) => {
    setSelected(key);
    pendingJump.current?.();
    pendingJump.current = undefined;
  }, []);
  const onSelect = useCallback(
    (key: string, segmentNumber: number | undefined) => {
      select(key);
      if (state.kind === "ready" && segmentNumber !== undefined) pendingJump.current = highlightSegment(services, state.result, segmentNumber);
    },
    [services, state, select],
  );
  const onShowLesions = useCallback(() => {
    if (lesionSeg === undefined || lesion.state === "loading") return;
    select("detection");
    // Each further click shows the next lesion.
    const wanted = lesion.state === "shown" ? nextLesion(lesion.shown, lesion.numbers) : undefined;
    setLesion((previous) => ({ ...previous, state: "loading" }));
    showLesion(services, lesionSeg, wanted).then(
      (answer) => setLesion(answer === undefined ? { state: "failed", numbers: [] } : { state: "shown", ...answer }),
      () => setLesion({ state: "failed", numbers: [] }),
    );
  }, [services, lesionSeg, lesion, select]);
  const onSelectNode = useCallback(
    (row: NodeRow) => {
      select(row.key);
      setNode({ state: "loading", nodeId: row.nodeId });
      showNode(services, row, nodeSeg).then(
        ({ jumped, segment }) =>
          setNode(jumped ? { state: "shown", nodeId: row.nodeId, ...(segment === undefined ? {} : { segment }) } : { state: "failed", nodeId: row.nodeId }),
        () => setNode({ state: "failed", nodeId: row.nodeId }),
      );
    },
    [services, nodeSeg, select],
  );

  if (state.kind !== "ready") {
    const lines = state.kind === "none" ? noResultLines(state.status) : undefined;
    const text =
      state.kind === "waiting"
        ? "Waiting for the study…"
        : state.kind === "loading"
          ? "Loading the AI result…"
          : lines !== undefined
            ? lines.status
            : `Could not load the AI result: ${state.kind === "error" ? state.message : ""}`;
    return (
      <div
        className="pai-panel"
        data-testid="pancreas-ai-panel"
        data-state={state.kind}
        data-status={state.kind === "none" ? state.status?.status : undefined}
      >
        <p className="pai-muted" data-testid="pancreas-ai-status">{text}</p>
        {lines?.reason !== undefined && <p data-testid="pancreas-ai-reason">{lines.reason}</p>}
        <p className="pai-notice" data-testid="pancreas-ai-notice">Investigational, not for clinical use.</p>
      </div>
    );
  }

  if (view === undefined) return <div data-testid="pancreas-ai-panel" />;
  return (
    <div className="pai-panel" data-testid="pancreas-ai-panel" data-state="ready" data-source={state.result.source}>
      <p className="pai-notice" data-testid="pancreas-ai-notice">{view.notice}</p>
      {view.domainText !== undefined && (
        <section data-testid="pancreas-ai-domain">
          <p className="pai-muted">{view.domainText}</p>
          {view.domainReasons.map((reason) => (
            <p className="pai-muted" key={reason}>{reason}</p>
          ))}
        </section>
      )}
      {view.noTumorText !== undefined ? (
        <section>
          <h3>NCCN category (AI)</h3>
          <div className="pai-category pai-no-tumor" data-testid="pancreas-ai-no-tumor">
            {view.noTumorText}
          </div>
        </section>
      ) : (
      <section>
        <h3>NCCN category (AI)</h3>
        <div className={`pai-category pai-cat-${(view.category ?? "none").replace(" ", "-")}`} data-testid="pancreas-ai-category">
          {view.categoryText}
        </div>
        <div className="pai-bars">
          {view.bars.map((bar) => (
            <div className="pai-bar-row" key={bar.label} data-testid={`pancreas-ai-prob-${bar.label.replace(" ", "-")}`} data-value={bar.percent}>
              <span className="pai-bar-label">{bar.label}</span>
              <span className="pai-bar-track">
                <span className={bar.isPrediction ? "pai-bar pai-bar-max" : "pai-bar"} style={{ width: `${bar.percent}%` }} />
              </span>
              <span className="pai-bar-value">{bar.text}</span>
            </div>
          ))}
        </div>
        <div className="pai-kv">
          <span>Uncertainty</span>
          <span data-testid="pancreas-ai-uncertainty" data-value={state.result.category?.uncertainty ?? ""}>{view.uncertaintyText}</span>
          <span>Contact-angle rule</span>
          <span data-testid="pancreas-ai-rule-category">{view.ruleCategoryText}</span>
        </div>
        {view.disagreementWarning !== undefined && (
          <div className="pai-warning" role="alert" data-testid="pancreas-ai-disagreement">⚠ {view.disagreementWarning}</div>
        )}
      </section>
      )}
      {state.result.studyUid !== undefined || studyUid !== undefined ? (
        <ReviewSection
          services={services}
          studyUid={state.result.studyUid ?? studyUid ?? ""}
          seg={segDisplaySet(services, state.result)}
          defaultSegment={state.result.segments.tumor?.segmentNumber}
        />
      ) : null}
      <section>
        <h3>Tumor–vessel contact</h3>
        <table className="pai-table" data-testid="pancreas-ai-vessels">
          <thead>
            <tr><th>Vessel</th><th>Contact</th><th>Rule</th></tr>
          </thead>
          <tbody>
            {view.vessels.map((row) => (
              <tr
                key={row.key}
                data-testid={`pancreas-ai-vessel-${row.key}`}
                data-angle={row.angleDeg ?? ""}
                data-level={row.level}
                aria-selected={selected === row.key}
                className={`${selected === row.key ? "pai-selected " : ""}${LEVEL_CLASS[row.level]}`}
                onClick={() => onSelect(row.key, row.segmentNumber)}
                title={row.segmentNumber === undefined ? "no segment in the SEG" : "show this vessel's segment"}
              >
                <td><span className="pai-swatch" style={{ background: row.color }} /> {row.key} <span className="pai-muted">{row.name}</span></td>
                <td data-testid={`pancreas-ai-vessel-${row.key}-angle`}>{row.angleText}</td>
                <td className="pai-muted">{row.thresholdText}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section>
        <h3>Tumor</h3>
        <div
          className={`pai-kv pai-clickable${selected === "tumor" ? " pai-selected" : ""}`}
          data-testid="pancreas-ai-tumor"
          onClick={() => onSelect("tumor", view.tumor.segmentNumber)}
        >
          <span><span className="pai-swatch" style={{ background: view.tumor.color }} /> Volume</span>
          <span data-testid="pancreas-ai-tumor-volume" data-value={state.result.measurements.tumorVolumeMl ?? ""}>{view.tumor.volumeText}</span>
          <span>Max. diameter</span>
          <span data-testid="pancreas-ai-tumor-diameter" data-value={state.result.measurements.tumorMaxDiameterMm ?? ""}>{view.tumor.diameterText}</span>
        </div>
      </section>
      {state.result.lymphNodes !== undefined && (
        <NodeList assessment={state.result.lymphNodes} selected={selected} state={node} nodeSeg={nodeSeg} onSelect={onSelectNode} />
      )}
      {state.result.prognosis !== undefined && <PrognosisSection prognosis={state.result.prognosis} />}
      <section>
        <h3>Clinical inputs</h3>
        <div className="pai-kv">
          <span>Used</span>
          <span data-testid="pancreas-ai-clinical-used">{view.clinical.used.join(", ") || "—"}</span>
          <span>Missing</span>
          <span data-testid="pancreas-ai-clinical-missing">{view.clinical.missing.join(", ") || "—"}</span>
          <span>Imputed</span>
          <span data-testid="pancreas-ai-clinical-imputed">{view.clinical.imputed.join(", ") || "—"}</span>
          <span>Registry</span>
          <span data-testid="pancreas-ai-registry">{view.clinical.registryText}{view.clinical.knockedOut ? " (clinical input knocked out)" : ""}</span>
        </div>
      </section>
      <section>
        <div className="pai-kv">
          <span>Model</span>
          <span data-testid="pancreas-ai-model">{view.modelText}</span>
          <span>PDAC detection</span>
          <span>
            <span
              data-testid="pancreas-ai-detection"
              className={lesionSeg === undefined ? undefined : `pai-clickable${selected === "detection" ? " pai-selected" : ""}`}
              onClick={lesionSeg === undefined ? undefined : onShowLesions}
              title={lesionSeg === undefined ? undefined : "show the detected lesions on the CT"}
            >
              {view.detectionText}
            </span>
            {lesionSeg !== undefined && (
              <button
                type="button"
                className="pai-lesion-button"
                data-testid="pancreas-ai-show-lesions"
                data-state={lesion.state}
                data-lesion={lesion.shown ?? ""}
                data-segmentation-id={lesionSeg.displaySetInstanceUID}
                disabled={lesion.state === "loading"}
                onClick={onShowLesions}
              >
                {lesionButtonText(lesion.state, lesion.shown, lesion.numbers.length)}
              </button>
            )}
          </span>
          <span>Analysed</span>
          <span data-testid="pancreas-ai-analysed">{view.analysedText}</span>
          <span>Source</span>
          <span data-testid="pancreas-ai-source">{view.sourceText}</span>
        </div>
        {view.warnings.map((w) => (
          <p className="pai-muted" key={w} data-testid="pancreas-ai-warning">{w}</p>
        ))}
      </section>
    </div>
  );
}
