/**
 * The lymph-node model's answer (result 1.6, issue 24): the patient's N estimate and the nodes
 * it reports (`result.json` `lymph_nodes`, `pancreas_contracts.lymph_nodes.LymphNodeAssessment`),
 * read from the plugin's results route (its `lymph_nodes` section, `orthanc_plugin/_lymph_nodes.py`),
 * and the node SEG the node writes beside the anatomical one (series 9005, never hung by default;
 * the panel's "Lymph nodes" list shows it over the CT on request). Pure logic, unit-tested.
 */
import type { DisplaySet, Segment } from "./ohifTypes";

/** The node SEG's series number (`outputs.lymph_node_seg_sop_uid`; a pytest checks the writer's when it has one). */
export const LYMPH_NODE_SEG_SERIES_NUMBER = 9005;

export type NEstimate = "N0" | "N+";

export interface LymphNode {
  nodeId: number;
  /** JPS station code ("8a", "14p"); undefined when none could be assigned. */
  station?: string;
  stationDescription?: string;
  /**
   * Centre in DICOM patient coordinates (LPS, mm): where the viewport jumps. The plugin route
   * always has it; the SR only for a node without a segment (a SCOORD3D point).
   */
  centreLps?: [number, number, number];
  /** The node's segment in the node SEG (the SR's referenced segment). */
  segmentNumber?: number;
  shortAxisMm: number;
  longAxisMm?: number;
  volumeMl?: number;
  /** The classifier's probability of metastasis. */
  probability: number;
  /** Whether it reaches the bundle's node threshold. */
  suspicious: boolean;
}

export interface LymphNodeAssessment {
  nEstimate: NEstimate;
  /** Patient-level probability of regional node metastasis (N+). */
  nPositiveProbability: number;
  threshold?: number;
  modelVersion?: string;
  /** Reported nodes, the most probable first (as the model lists them). */
  nodes: LymphNode[];
  /** The node SEG's SOPInstanceUID (`outputs.lymph_node_seg`), when the node wrote one. */
  segSopInstanceUid?: string;
}

type Json = unknown;

function obj(value: Json): Record<string, Json> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, Json>)
    : undefined;
}

function finite(value: Json): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

export function isNEstimate(value: Json): value is NEstimate {
  return value === "N0" || value === "N+";
}

function parseNode(value: Json): LymphNode | undefined {
  const node = obj(value);
  const centre = Array.isArray(node?.centre_lps_mm) ? node.centre_lps_mm.map(finite) : [];
  const nodeId = finite(node?.node_id);
  const shortAxisMm = finite(node?.short_axis_mm);
  const probability = finite(node?.probability);
  if (node === undefined || nodeId === undefined || shortAxisMm === undefined || probability === undefined) return undefined;
  const [x, y, z] = centre;
  if (centre.length !== 3 || x === undefined || y === undefined || z === undefined) return undefined;
  const out: LymphNode = { nodeId, centreLps: [x, y, z], shortAxisMm, probability, suspicious: node.suspicious === true };
  if (typeof node.station === "string" && node.station !== "") out.station = node.station;
  if (typeof node.station_description === "string") out.stationDescription = node.station_description;
  const longAxis = finite(node.long_axis_mm);
  if (longAxis !== undefined) out.longAxisMm = longAxis;
  const volume = finite(node.volume_ml);
  if (volume !== undefined) out.volumeMl = volume;
  return out;
}

/**
 * The results route's `lymph_nodes` section (or `result.json`'s, same fields) as an assessment;
 * undefined for `null` (no lymph-node model) or a section without an N estimate.
 */
export function parseLymphNodes(section: Json, segSopInstanceUid?: string): LymphNodeAssessment | undefined {
  const root = obj(section);
  const probability = finite(root?.n_positive_probability);
  if (root === undefined || !isNEstimate(root.n_estimate) || probability === undefined) return undefined;
  const nodes = (Array.isArray(root.nodes) ? root.nodes : [])
    .map(parseNode)
    .filter((n): n is LymphNode => n !== undefined);
  const out: LymphNodeAssessment = { nEstimate: root.n_estimate, nPositiveProbability: probability, nodes };
  const threshold = finite(root.threshold);
  if (threshold !== undefined) out.threshold = threshold;
  if (typeof root.model_version === "string") out.modelVersion = root.model_version;
  if (segSopInstanceUid !== undefined) out.segSopInstanceUid = segSopInstanceUid;
  return out;
}

/**
 * The N estimate in one line, as `LymphNodeAssessment.describe()` writes it (the SR, the PDF and
 * the plugin's `text`): `N+ (probability 0.71, threshold 0.50): 2 suspicious of 5 nodes`.
 */
export function nEstimateText(assessment: LymphNodeAssessment | undefined): string {
  if (assessment === undefined) return "—";
  const count = assessment.nodes.length;
  const suspicious = assessment.nodes.filter((n) => n.suspicious).length;
  const threshold = assessment.threshold === undefined ? "" : `, threshold ${assessment.threshold.toFixed(2)}`;
  return (
    `${assessment.nEstimate} (probability ${assessment.nPositiveProbability.toFixed(2)}${threshold}): ` +
    `${suspicious} suspicious of ${count} node${count !== 1 ? "s" : ""}`
  );
}

export interface NodeRow {
  key: string;
  nodeId: number;
  stationText: string;
  stationTitle: string;
  shortAxisText: string;
  probabilityText: string;
  suspicious: boolean;
  /** The suspicious marker ("●" suspicious, "○" not). */
  marker: string;
  centreLps?: [number, number, number];
  segmentNumber?: number;
}

/** The panel's node list, in the model's order (the most probable first). */
export function nodeRows(assessment: LymphNodeAssessment | undefined): NodeRow[] {
  return (assessment?.nodes ?? []).map((node) => {
    const row: NodeRow = {
      key: `node-${node.nodeId}`,
      nodeId: node.nodeId,
      stationText: node.station === undefined ? "—" : `JPS ${node.station}`,
      stationTitle: node.stationDescription ?? (node.station === undefined ? "no JPS station assigned" : `station ${node.station}`),
      shortAxisText: `${node.shortAxisMm.toFixed(1)} mm`,
      probabilityText: node.probability.toFixed(2),
      suspicious: node.suspicious,
      marker: node.suspicious ? "●" : "○",
    };
    if (node.centreLps !== undefined) row.centreLps = node.centreLps;
    if (node.segmentNumber !== undefined) row.segmentNumber = node.segmentNumber;
    return row;
  });
}

/** Whether a display set is the node's lymph-node SEG (by its series number). */
export function isNodeSeg(displaySet: DisplaySet): boolean {
  return displaySet.Modality === "SEG" && Number(displaySet.SeriesNumber) === LYMPH_NODE_SEG_SERIES_NUMBER;
}

/**
 * The study's node SEG: the one with the result's SOPInstanceUID, else the last one listed
 * (the newest analysis); undefined when the study has none.
 */
export function nodeSegOf(displaySets: readonly DisplaySet[], sopInstanceUid?: string): DisplaySet | undefined {
  const segs = displaySets.filter(isNodeSeg);
  const exact =
    sopInstanceUid === undefined ? undefined : segs.find((ds) => ds.instances?.some((i) => i.SOPInstanceUID === sopInstanceUid));
  return exact ?? segs.at(-1);
}

/**
 * The node SEG's segment for a node, by its label or tracking text: one segment per node
 * (`node 3`, `lymph-node-3`), else the suspicious / not suspicious segment the node belongs to.
 */
export function nodeSegmentFor(
  segments: Record<string, Segment | undefined> | undefined,
  node: Pick<LymphNode, "nodeId" | "suspicious">,
): number | undefined {
  const entries = Object.entries(segments ?? {}).flatMap(([key, segment]) => {
    const n = segment?.segmentIndex ?? Number(key);
    return Number.isInteger(n) && n > 0 ? [{ n, label: (segment?.label ?? "").toLowerCase() }] : [];
  });
  const byId = entries.find((e) => Number(/node[\s_-]*(\d+)/.exec(e.label)?.[1]) === node.nodeId);
  if (byId !== undefined) return byId.n;
  const notSuspicious = (label: string): boolean => /not suspicious|non-suspicious|benign|negative/.test(label);
  const byKind = entries.find((e) =>
    node.suspicious ? /suspicious|metasta|positive/.test(e.label) && !notSuspicious(e.label) : notSuspicious(e.label),
  );
  return byKind?.n;
}

export type NodeState = "idle" | "loading" | "shown" | "failed";

// --- worklist ------------------------------------------------------------------------------

/** The worklist's N cell: `N+ 0.71`, `N0 0.22`, or "—" without a lymph-node result. */
export function nCellText(nEstimate: NEstimate | undefined, probability: number | undefined): string {
  if (nEstimate === undefined) return "—";
  return probability === undefined ? nEstimate : `${nEstimate} ${probability.toFixed(2)}`;
}
