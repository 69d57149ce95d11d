import { describe, expect, it } from "vitest";
import type { DisplaySet, Services } from "../src/ohifTypes";
import { type CornerstoneGlobal, editTarget, ensureShown, paintableSegments, readLabelmap, sopOfImageId, startEditing, stopEditing } from "../src/review/labelmap";
import { correctionFrames, decodeRle } from "../src/review/rle";

const ct = (sop: string): string => `wadors:/dicom-web/studies/1.2/series/1.2.1/instances/${sop}/frames/1`;

/** A viewer with a 2 x 3 labelmap over a three-image CT, and a tool group that records calls. */
function viewer(options: { volume?: boolean } = {}) {
  const calls: string[] = [];
  let primary = "WindowLevel";
  const toolGroup = {
    setToolActive: (name: string) => {
      calls.push(`active ${name}`);
      primary = name;
    },
    setToolPassive: (name: string) => calls.push(`passive ${name}`),
    getActivePrimaryMouseButtonTool: () => primary,
    hasTool: (name: string) => ["CircularBrush", "CircularEraser", "WindowLevel"].includes(name),
  };
  // Labelmap slices listed in another order than the CT: the referenced imageIds say which is which.
  const slices: Record<string, number[]> = {
    "lm:a": [0, 0, 0, 0, 0, 0],
    "lm:b": [0, 3, 3, 0, 0, 0],
    "lm:c": [1, 1, 0, 0, 0, 7],
  };
  const referenced: Record<string, string> = { "lm:a": ct("1.2.1.1"), "lm:b": ct("1.2.1.2"), "lm:c": ct("1.2.1.3") };
  const cs: CornerstoneGlobal = {
    cache: {
      getImage: (id: string) =>
        id in slices ? { rows: 2, columns: 3, referencedImageId: referenced[id], voxelManager: { getScalarData: () => Uint8Array.from(slices[id]!) } } : undefined,
      getVolume: () => ({ voxelManager: { getCompleteScalarDataArray: () => Uint8Array.from([...slices["lm:a"]!, ...slices["lm:b"]!, ...slices["lm:c"]!]) } }),
    },
    metaData: { get: (type: string, imageId: string) => (type === "instance" ? { SOPInstanceUID: /instances\/([0-9.]+)/.exec(imageId)?.[1] } : undefined) },
  };
  const segmentation = {
    segmentationId: "seg-ds",
    segments: { "0": undefined, "1": { segmentIndex: 1, label: "Tumor" }, "3": { segmentIndex: 3, label: "SMA" } },
    representationData: {
      Labelmap: {
        imageIds: ["lm:a", "lm:b", "lm:c"],
        referencedImageIds: [ct("1.2.1.1"), ct("1.2.1.2"), ct("1.2.1.3")],
        ...(options.volume ? { volumeId: "vol" } : {}),
      },
    },
  };
  const services = {
    displaySetService: {
      getActiveDisplaySets: () => [],
      getDisplaySetByUID: (uid: string) => (uid === "ct-ds" ? { displaySetInstanceUID: "ct-ds", SeriesInstanceUID: "1.2.1" } : undefined),
      subscribe: () => ({ unsubscribe: () => undefined }),
      EVENTS: {},
    },
    viewportGridService: { getState: () => ({ activeViewportId: "vp" }) },
    toolGroupService: { getToolGroupForViewport: (id: string) => (id === "vp" ? toolGroup : undefined) },
    segmentationService: {
      getSegmentations: () => [segmentation],
      getSegmentation: (id: string) => (id === "seg-ds" ? segmentation : undefined),
      getSegmentationRepresentations: () => [],
      addSegmentationRepresentation: () => undefined,
      setActiveSegment: (id: string, index: number) => calls.push(`segment ${id} ${index}`),
      setActiveSegmentation: (vp: string, id: string) => calls.push(`segmentation ${vp} ${id}`),
      jumpToSegmentCenter: () => undefined,
      subscribe: () => ({ unsubscribe: () => undefined }),
      EVENTS: {},
    },
  } as unknown as Services;
  const seg: DisplaySet = { displaySetInstanceUID: "seg-ds", Modality: "SEG", instances: [{ SOPInstanceUID: "1.2.9" }], referencedDisplaySetInstanceUID: "ct-ds" };
  return { services, cs, seg, calls };
}

describe("the AI SEG's labelmap in the viewer", () => {
  it("is read per CT image, in the series' order, each slice row-major", () => {
    const { services, cs } = viewer();
    const map = readLabelmap(services, "seg-ds", cs);
    expect(map.rows).toBe(2);
    expect(map.columns).toBe(3);
    expect(map.ctSopOrder).toEqual(["1.2.1.1", "1.2.1.2", "1.2.1.3"]);
    const frames = correctionFrames(map.slices, map.ctSopOrder, map.rows, map.columns);
    expect(frames.map((f) => f.rle)).toEqual([[[0, 6]], [[0, 1], [3, 2], [0, 3]], [[1, 2], [0, 3], [7, 1]]]);
    expect(Array.from(decodeRle(frames[2]!.rle))).toEqual([1, 1, 0, 0, 0, 7]);
  });

  it("is sliced from the volume when OHIF made the labelmap a volume", () => {
    const { services, cs } = viewer({ volume: true });
    const map = readLabelmap(services, "seg-ds", cs);
    expect(map.slices.map((s) => Array.from(s.labels))).toEqual([[0, 0, 0, 0, 0, 0], [0, 3, 3, 0, 0, 0], [1, 1, 0, 0, 0, 7]]);
  });

  it("refuses a segmentation that is not loaded, or a viewer without cornerstone", () => {
    const { services, cs } = viewer();
    expect(() => readLabelmap(services, "other", cs)).toThrow(/no labelmap images/);
    expect(() => readLabelmap(services, "seg-ds", undefined)).toThrow(/cornerstone is not available/);
  });

  it("names the SEG, its CT series and the segments a brush may paint", () => {
    const { services, seg } = viewer();
    expect(editTarget(services, seg)).toEqual({ segmentationId: "seg-ds", segSopInstanceUid: "1.2.9", referencedSeriesInstanceUid: "1.2.1" });
    expect(editTarget(services, undefined)).toBeUndefined();
    expect(paintableSegments(services, "seg-ds")).toEqual([{ index: 1, label: "Tumor" }, { index: 3, label: "SMA" }]);
    expect(sopOfImageId("wadouri:/wado?requestType=WADO&objectUID=1.2.3&studyUID=1", undefined)).toBe("1.2.3");
  });
});

describe("OHIF's brush and eraser", () => {
  it("paint the AI SEG's chosen segment, then give the mouse back to window/level", () => {
    const { services, seg, calls } = viewer();
    const target = editTarget(services, seg)!;
    expect(startEditing(services, target, 3)).toBe(true);
    expect(calls).toEqual(["segmentation vp seg-ds", "segment seg-ds 3", "passive WindowLevel", "active CircularBrush"]);
    calls.length = 0;
    expect(startEditing(services, target, 3, "CircularEraser")).toBe(true);
    expect(calls.slice(-2)).toEqual(["passive CircularBrush", "active CircularEraser"]);
    calls.length = 0;
    stopEditing(services);
    expect(calls).toEqual(["passive CircularEraser", "active WindowLevel"]);
  });

  it("are refused for a tool the viewport lacks or a segmentation not loaded", () => {
    const { services, seg } = viewer();
    const target = editTarget(services, seg)!;
    expect(startEditing(services, target, 1, "SculptorTool")).toBe(false);
    expect(startEditing(services, { ...target, segmentationId: "other" }, 1)).toBe(false);
  });
});

describe("an AI SEG that is not the one hung", () => {
  it("is loaded and shown in the viewport before the brush paints it", async () => {
    const loaded = new Set<string>();
    const shown: string[] = [];
    const services = {
      viewportGridService: { getState: () => ({ activeViewportId: "vp" }) },
      segmentationService: {
        getSegmentation: (id: string) => (loaded.has(id) ? { segmentationId: id } : undefined),
        getSegmentationRepresentations: (_vp: string, { segmentationId }: { segmentationId: string }) => shown.filter((s) => s === segmentationId),
        addSegmentationRepresentation: async (vp: string, { segmentationId }: { segmentationId: string }) => {
          shown.push(segmentationId);
          return vp;
        },
      },
    } as unknown as Services;
    const seg: DisplaySet = { displaySetInstanceUID: "ai-seg", load: async () => loaded.add("ai-seg") };
    expect(await ensureShown(services, seg)).toBe(true);
    expect(shown).toEqual(["ai-seg"]);
    expect(await ensureShown(services, seg)).toBe(true);
    expect(shown).toEqual(["ai-seg"]); // shown once
    expect(await ensureShown(services, { displaySetInstanceUID: "other" })).toBe(false); // nothing to load it with
  });
});
