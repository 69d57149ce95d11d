import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import type { DicomJsonDataset } from "../src/dicomJson";
import { isViewportCandidate } from "../src/hangingProtocol";
import {
  isNodeSeg,
  LYMPH_NODE_SEG_SERIES_NUMBER,
  nCellText,
  nEstimateText,
  nodeRows,
  nodeSegmentFor,
  nodeSegOf,
  parseLymphNodes,
} from "../src/lymphNodes";
import type { DisplaySet, Segmentation, Services } from "../src/ohifTypes";
import { jumpToPoint, showNode } from "../src/panel/PanelContent";
import { fromPluginResults, mergeResults } from "../src/plugin";
import type { PancreasResult } from "../src/result";
import { parseMeasurementReport } from "../src/sr";
import { filterRows, sortRows, type WorklistRow } from "../src/viewModel";

/** The plugin's `lymph_nodes` section (orthanc_plugin/_lymph_nodes.py) for two nodes. */
const section = {
  model_version: "lymph-nodes-phantom 0.1.0",
  n_positive_probability: 0.71,
  threshold: 0.5,
  n_estimate: "N+",
  nodes: [
    { node_id: 1, station: "8a", station_description: "anterosuperior, along the common hepatic artery", centre_lps_mm: [10, 20, -30], short_axis_mm: 12.5, long_axis_mm: 16, volume_ml: 1.1, probability: 0.81, suspicious: true },
    { node_id: 2, station: null, station_description: null, centre_lps_mm: [-5, 25, -40], short_axis_mm: 6, long_axis_mm: 9, volume_ml: 0.2, probability: 0.12, suspicious: false },
  ],
  inputs_used: ["ct"],
  inputs_missing: [],
  warnings: [],
  suspicious_count: 1,
  text: "N+ (probability 0.71, threshold 0.50): 1 suspicious of 2 nodes",
};

describe("lymph-node assessment", () => {
  it("reads the plugin's section", () => {
    const a = parseLymphNodes(section, "1.2.9005");
    expect(a?.nEstimate).toBe("N+");
    expect(a?.nPositiveProbability).toBe(0.71);
    expect(a?.segSopInstanceUid).toBe("1.2.9005");
    expect(a?.nodes.map((n) => [n.nodeId, n.station, n.centreLps, n.suspicious])).toEqual([
      [1, "8a", [10, 20, -30], true],
      [2, undefined, [-5, 25, -40], false],
    ]);
  });

  it("is absent without a lymph-node model and skips malformed nodes", () => {
    expect(parseLymphNodes(null)).toBeUndefined();
    expect(parseLymphNodes({ ...section, n_estimate: "N1" })).toBeUndefined();
    const broken = parseLymphNodes({ ...section, nodes: [{ node_id: 3, centre_lps_mm: [1, 2], short_axis_mm: 4, probability: 0.1 }, section.nodes[0]] });
    expect(broken?.nodes.map((n) => n.nodeId)).toEqual([1]);
  });

  it("says the N estimate in the words of LymphNodeAssessment.describe()", () => {
    expect(nEstimateText(parseLymphNodes(section))).toBe(section.text);
    const one = parseLymphNodes({ ...section, n_estimate: "N0", n_positive_probability: 0.2, nodes: [section.nodes[1]] });
    expect(nEstimateText(one)).toBe("N0 (probability 0.20, threshold 0.50): 0 suspicious of 1 node");
    expect(nEstimateText(undefined)).toBe("—");
  });

  it("lists the nodes with station, short axis, probability and the suspicious marker", () => {
    const rows = nodeRows(parseLymphNodes(section));
    expect(rows.map((r) => [r.stationText, r.shortAxisText, r.probabilityText, r.marker])).toEqual([
      ["JPS 8a", "12.5 mm", "0.81", "●"],
      ["—", "6.0 mm", "0.12", "○"],
    ]);
    expect(rows[0]?.stationTitle).toBe("anterosuperior, along the common hepatic artery");
    expect(rows[1]?.stationTitle).toBe("no JPS station assigned");
    expect(nodeRows(undefined)).toEqual([]);
  });
});

describe("plugin results route with lymph nodes (result 1.6)", () => {
  const body = {
    study_instance_uid: "1.2.3",
    status: "ai-done",
    result: {
      category: { label: "borderline", probabilities: { resectable: 0.2, borderline: 0.7, "locally advanced": 0.1 } },
      measurements: { contact_deg: {} },
      model: { name: "m", version: "1" },
      lymph_nodes: section,
      outputs: { lymph_node_seg: { sop_instance_uid: "1.2.9005", in_orthanc: true } },
    },
  };

  it("carries the assessment and the node SEG's UID", () => {
    const r = fromPluginResults(body);
    expect(r?.lymphNodes?.nEstimate).toBe("N+");
    expect(r?.lymphNodes?.segSopInstanceUid).toBe("1.2.9005");
    expect(fromPluginResults({ ...body, result: { ...body.result, lymph_nodes: null } })?.lymphNodes).toBeUndefined();
  });

  it("keeps the plugin's nodes when merged with the SR, the SR's when the plugin has none", () => {
    const plugin = fromPluginResults(body);
    const sr = { ...(fromPluginResults({ ...body, result: { ...body.result, lymph_nodes: null } }) as PancreasResult), source: "sr" as const };
    expect(mergeResults(plugin, sr)?.lymphNodes?.nodes).toHaveLength(2);
    const srWithNodes = { ...sr, lymphNodes: parseLymphNodes({ ...section, n_estimate: "N0", n_positive_probability: 0.1 }) };
    const withoutPluginNodes = { ...(plugin as PancreasResult) };
    delete withoutPluginNodes.lymphNodes;
    expect(mergeResults(withoutPluginNodes, srWithNodes)?.lymphNodes?.nEstimate).toBe("N0");
  });
});

describe("the SR's lymph-node groups (inference/_sr_lymph_nodes.py)", () => {
  const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"));
  const sr = (fixture("sr-lymph-nodes-metadata.json") as DicomJsonDataset[])[0] as DicomJsonDataset;
  const expected = (fixture("result-lymph-nodes.json") as { lymph_nodes: typeof section; outputs: { lymph_node_seg_sop_uid: string } });
  const result = parseMeasurementReport(sr);

  it("reads the N estimate and every node equal to result.json", () => {
    const nodes = result.lymphNodes;
    expect(nodes?.nEstimate).toBe(expected.lymph_nodes.n_estimate);
    expect(nodes?.nPositiveProbability).toBeCloseTo(expected.lymph_nodes.n_positive_probability, 9);
    expect(nodes?.threshold).toBeCloseTo(expected.lymph_nodes.threshold, 9);
    expect(nodes?.segSopInstanceUid).toBe(expected.outputs.lymph_node_seg_sop_uid);
    expect(nodes?.nodes.map((n) => [n.nodeId, n.station, n.suspicious])).toEqual(
      expected.lymph_nodes.nodes.map((n) => [n.node_id, n.station ?? undefined, n.suspicious]),
    );
    for (const [i, node] of (nodes?.nodes ?? []).entries()) {
      const want = expected.lymph_nodes.nodes[i];
      expect(node.shortAxisMm).toBeCloseTo(want?.short_axis_mm ?? NaN, 6);
      expect(node.probability).toBeCloseTo(want?.probability ?? NaN, 6);
      expect(node.volumeMl).toBeCloseTo(want?.volume_ml ?? NaN, 6);
      expect(node.segmentNumber).toBe(i + 1);
      expect(node.stationDescription).toBeTypeOf("string");
    }
    expect(nEstimateText(nodes)).toBe(
      "N+ (probability 0.71, threshold 0.50): 1 suspicious of 2 nodes",
    );
  });

  it("keeps the staging values of the same SR", () => {
    expect(result.category).toBeDefined();
    expect(result.measurements.tumorVolumeMl).toBeGreaterThan(0);
    expect(result.bundle.name).toBe("pancreas-ai-phantom");
  });
});

const ct: DisplaySet = { displaySetInstanceUID: "ct", Modality: "CT", SeriesNumber: 1, images: [{}] };
const anatomy: DisplaySet = { displaySetInstanceUID: "seg", Modality: "SEG", SeriesNumber: 9001 };
const nodes: DisplaySet = { displaySetInstanceUID: "nodes", Modality: "SEG", SeriesNumber: 9005, instances: [{ SOPInstanceUID: "1.2.9005" }] };

describe("node SEG", () => {
  it("is the SEG of series 9005, never hung by default", () => {
    expect(LYMPH_NODE_SEG_SERIES_NUMBER).toBe(9005);
    expect(isNodeSeg(nodes)).toBe(true);
    expect(isNodeSeg({ ...nodes, SeriesNumber: "9005" })).toBe(true);
    expect(isNodeSeg(anatomy)).toBe(false);
    expect(isNodeSeg({ ...ct, SeriesNumber: 9005 })).toBe(false);
    expect(isViewportCandidate(nodes)).toBe(false);
    expect(isViewportCandidate(anatomy)).toBe(true);
  });

  it("is found by the result's UID, else the newest", () => {
    const older = { ...nodes, displaySetInstanceUID: "old", instances: [{ SOPInstanceUID: "1.2.old" }] };
    expect(nodeSegOf([ct, anatomy])).toBeUndefined();
    expect(nodeSegOf([nodes, older], "1.2.9005")).toBe(nodes);
    expect(nodeSegOf([nodes, older], "1.2.gone")).toBe(older);
  });

  it("finds a node's segment by its number, else by suspicious / not suspicious", () => {
    const perNode = { "1": { segmentIndex: 1, label: "Lymph node 1 (p 0.81)" }, "2": { segmentIndex: 2, label: "Lymph node 12 (p 0.12)" } };
    expect(nodeSegmentFor(perNode, { nodeId: 12, suspicious: false })).toBe(2);
    expect(nodeSegmentFor(perNode, { nodeId: 1, suspicious: true })).toBe(1);
    const byKind = { "1": { segmentIndex: 1, label: "Suspicious lymph nodes" }, "2": { segmentIndex: 2, label: "Lymph nodes, not suspicious" } };
    expect(nodeSegmentFor(byKind, { nodeId: 5, suspicious: true })).toBe(1);
    expect(nodeSegmentFor(byKind, { nodeId: 5, suspicious: false })).toBe(2);
    expect(nodeSegmentFor(undefined, { nodeId: 1, suspicious: true })).toBeUndefined();
  });
});

function fakeServices(withSeg: boolean) {
  const segmentations = new Map<string, Segmentation>();
  const nodeSegmentation: Segmentation = { segmentationId: "nodes", segments: { "1": { segmentIndex: 1, label: "Lymph node 1" }, "2": { segmentIndex: 2, label: "Lymph node 2" } } };
  const representations: string[] = [];
  const viewport = { jumpToWorld: vi.fn(() => true), render: vi.fn() };
  const segmentationService = {
    getSegmentations: () => [...segmentations.values()],
    getSegmentation: (id: string) => segmentations.get(id),
    getSegmentationRepresentations: (_viewport: string, spec?: { segmentationId?: string }) => representations.filter((r) => r === spec?.segmentationId),
    addSegmentationRepresentation: vi.fn(async (_viewport: string, options: { segmentationId: string }) => void representations.push(options.segmentationId)),
    setActiveSegment: vi.fn(),
    jumpToSegmentCenter: vi.fn(),
    subscribe: () => ({ unsubscribe: () => undefined }),
    EVENTS: {},
  };
  const load = vi.fn(async () => void segmentations.set("nodes", nodeSegmentation));
  const services: Services = {
    displaySetService: { getActiveDisplaySets: () => (withSeg ? [ct, anatomy, nodes] : [ct, anatomy]), subscribe: () => ({ unsubscribe: () => undefined }), EVENTS: {} },
    segmentationService,
    viewportGridService: { getState: () => ({ activeViewportId: "default" }) },
    cornerstoneViewportService: { getCornerstoneViewport: (id: string) => (id === "default" ? viewport : undefined) },
    userAuthenticationService: { getAuthorizationHeader: () => ({ Authorization: "Basic x" }) },
  };
  return { services, segmentationService, load, representations, viewport };
}

describe("showNode", () => {
  const node = { nodeId: 2, suspicious: false, centreLps: [-5, 25, -40] as [number, number, number] };

  it("jumps the active viewport to the node's centre without a node SEG", async () => {
    const { services, viewport, segmentationService } = fakeServices(false);
    expect(await showNode(services, node, undefined)).toEqual({ jumped: true, segment: undefined });
    expect(viewport.jumpToWorld).toHaveBeenCalledWith([-5, 25, -40]);
    expect(viewport.render).toHaveBeenCalled();
    expect(segmentationService.addSegmentationRepresentation).not.toHaveBeenCalled();
  });

  it("loads the node SEG over the CT, makes the node's segment active and jumps to its centre", async () => {
    const { services, viewport, segmentationService, load, representations } = fakeServices(true);
    expect(await showNode(services, node, { ...nodes, load })).toEqual({ jumped: true, segment: 2 });
    expect(load).toHaveBeenCalledWith({ headers: { Authorization: "Basic x" } });
    expect(representations).toEqual(["nodes"]);
    expect(segmentationService.setActiveSegment).toHaveBeenCalledWith("nodes", 2);
    expect(viewport.jumpToWorld).toHaveBeenCalledWith([-5, 25, -40]);
    // Again: no second load, no second representation.
    await showNode(services, { ...node, nodeId: 1 }, { ...nodes, load });
    expect(load).toHaveBeenCalledTimes(1);
    expect(segmentationService.addSegmentationRepresentation).toHaveBeenCalledTimes(1);
    expect(segmentationService.setActiveSegment).toHaveBeenLastCalledWith("nodes", 1);
  });

  it("says when the viewport cannot jump", () => {
    const { services } = fakeServices(false);
    expect(jumpToPoint({ ...services, cornerstoneViewportService: undefined }, [0, 0, 0])).toBe(false);
    expect(jumpToPoint({ ...services, viewportGridService: { getState: () => ({ activeViewportId: null }) } }, [0, 0, 0])).toBe(false);
  });
});

describe("worklist N column", () => {
  const row = (uid: string, n: "N0" | "N+" | undefined, p: number | undefined): WorklistRow => ({
    studyUid: uid, patient: uid, studyDate: undefined, description: "", aiStatus: "ai-done", reason: undefined,
    category: undefined, boardDate: undefined, decision: "none", reviewer: undefined, pdacLikelihood: undefined,
    nEstimate: n, nPositiveProbability: p,
  });
  const rows = [row("a", "N+", 0.71), row("b", "N0", 0.22), row("c", undefined, undefined), row("d", "N+", 0.93)];

  it("sorts by the probability of N+, studies without one last", () => {
    expect(sortRows(rows, "n", true).map((r) => r.studyUid)).toEqual(["d", "a", "b", "c"]);
    expect(sortRows(rows, "n", false).map((r) => r.studyUid)).toEqual(["b", "a", "d", "c"]);
  });

  it("filters by the N estimate", () => {
    expect(filterRows(rows, { nStatus: "N+" }).map((r) => r.studyUid)).toEqual(["a", "d"]);
    expect(filterRows(rows, { nStatus: "N0" }).map((r) => r.studyUid)).toEqual(["b"]);
    expect(filterRows(rows, { nStatus: "all" })).toHaveLength(4);
  });

  it("shows the estimate and its probability", () => {
    expect(nCellText("N+", 0.714)).toBe("N+ 0.71");
    expect(nCellText("N0", undefined)).toBe("N0");
    expect(nCellText(undefined, undefined)).toBe("—");
  });
});
