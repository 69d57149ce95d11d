import { describe, expect, it, vi } from "vitest";
import {
  DETECTION_SEG_SERIES_DESCRIPTION,
  DETECTION_SEG_SERIES_NUMBER,
  isLesionSeg,
  lesionButtonText,
  lesionSegmentNumbers,
  lesionSegOf,
  nextLesion,
} from "../src/lesions";
import type { DisplaySet, Segmentation, Services } from "../src/ohifTypes";
import { showLesion } from "../src/panel/PanelContent";

const ct: DisplaySet = { displaySetInstanceUID: "ct", Modality: "CT", SeriesNumber: 1, images: [{}] };
const anatomy: DisplaySet = { displaySetInstanceUID: "seg", Modality: "SEG", SeriesNumber: 9001, SeriesDescription: "PancreasAI segmentation (investigational)" };
const lesions: DisplaySet = { displaySetInstanceUID: "lesions", Modality: "SEG", SeriesNumber: 9004, SeriesDescription: DETECTION_SEG_SERIES_DESCRIPTION };

describe("lesion SEG", () => {
  it("is the node's detection SEG series, by number or description", () => {
    expect(isLesionSeg(lesions)).toBe(true);
    expect(isLesionSeg({ ...lesions, SeriesDescription: undefined })).toBe(true);
    expect(isLesionSeg({ ...lesions, SeriesNumber: "9004", SeriesDescription: "renamed" })).toBe(true);
    expect(isLesionSeg({ ...lesions, SeriesNumber: undefined })).toBe(true);
    expect(isLesionSeg(anatomy)).toBe(false);
    // Only a SEG: a CT numbered 9004 is no lesion SEG.
    expect(isLesionSeg({ ...ct, SeriesNumber: DETECTION_SEG_SERIES_NUMBER })).toBe(false);
  });

  it("is found among the study's display sets, the newest when there are several", () => {
    expect(lesionSegOf([ct, anatomy])).toBeUndefined();
    expect(lesionSegOf([ct, lesions, anatomy])).toBe(lesions);
    const newer = { ...lesions, displaySetInstanceUID: "lesions-2" };
    expect(lesionSegOf([lesions, ct, newer])).toBe(newer);
  });

  it("lists its segments in order and cycles through them", () => {
    expect(lesionSegmentNumbers(undefined)).toEqual([]);
    expect(lesionSegmentNumbers({ "2": { segmentIndex: 2 }, "1": { segmentIndex: 1 }, "0": undefined, x: {} })).toEqual([1, 2]);
    expect(nextLesion(undefined, [])).toBeUndefined();
    expect(nextLesion(undefined, [1, 2, 3])).toBe(1);
    expect(nextLesion(1, [1, 2, 3])).toBe(2);
    expect(nextLesion(3, [1, 2, 3])).toBe(1);
    expect(nextLesion(1, [1])).toBe(1);
  });

  it("labels the control by its state", () => {
    expect(lesionButtonText("idle", undefined, 0)).toBe("Show lesions");
    expect(lesionButtonText("loading", undefined, 0)).toBe("Loading lesions…");
    expect(lesionButtonText("shown", 1, 1)).toBe("Lesion 1 shown");
    expect(lesionButtonText("shown", 2, 3)).toBe("Lesion 2 of 3 · next");
    expect(lesionButtonText("failed", undefined, 0)).toBe("Lesion SEG could not be shown");
  });
});

/** The segmentation service in small: segmentations by id and representations by viewport. */
function fakeServices(loaded: boolean, viewportId: string | null = "default") {
  const segmentations = new Map<string, Segmentation>();
  const lesionSegmentation: Segmentation = { segmentationId: "lesions", segments: { "1": { segmentIndex: 1 }, "2": { segmentIndex: 2 } } };
  if (loaded) segmentations.set("lesions", lesionSegmentation);
  const representations: string[] = [];
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
  const load = vi.fn(async () => void segmentations.set("lesions", lesionSegmentation));
  const services: Services = {
    displaySetService: { getActiveDisplaySets: () => [ct, anatomy, lesions], subscribe: () => ({ unsubscribe: () => undefined }), EVENTS: {} },
    segmentationService,
    viewportGridService: { getState: () => ({ activeViewportId: viewportId }) },
    userAuthenticationService: { getAuthorizationHeader: () => ({ Authorization: "Basic x" }) },
  };
  return { services, segmentationService, load, representations };
}

describe("showLesion", () => {
  it("loads the lesion SEG, adds it to the viewport and jumps to the first lesion", async () => {
    const { services, segmentationService, load, representations } = fakeServices(false);
    expect(await showLesion(services, { ...lesions, load })).toEqual({ shown: 1, numbers: [1, 2] });
    expect(load).toHaveBeenCalledWith({ headers: { Authorization: "Basic x" } });
    expect(representations).toEqual(["lesions"]);
    expect(segmentationService.addSegmentationRepresentation).toHaveBeenCalledWith("default", { segmentationId: "lesions", type: "Labelmap" });
    expect(segmentationService.setActiveSegment).toHaveBeenCalledWith("lesions", 1);
    expect(segmentationService.jumpToSegmentCenter).toHaveBeenCalledWith("lesions", 1, "default", 0.9, true, 400, false);
  });

  it("shows another lesion without loading the SEG again", async () => {
    const { services, segmentationService, load } = fakeServices(true);
    await showLesion(services, { ...lesions, load });
    expect(await showLesion(services, { ...lesions, load }, 2)).toEqual({ shown: 2, numbers: [1, 2] });
    expect(load).not.toHaveBeenCalled();
    expect(segmentationService.addSegmentationRepresentation).toHaveBeenCalledTimes(1);
    expect(segmentationService.jumpToSegmentCenter).toHaveBeenLastCalledWith("lesions", 2, "default", 0.9, true, 400, false);
    // A lesion the SEG does not hold: the first one.
    expect(await showLesion(services, lesions, 7)).toEqual({ shown: 1, numbers: [1, 2] });
  });

  it("shows nothing without a viewport or a way to load the SEG", async () => {
    expect(await showLesion(fakeServices(false, null).services, { ...lesions, load: vi.fn() })).toBeUndefined();
    expect(await showLesion(fakeServices(false).services, lesions)).toBeUndefined();
    const { services } = fakeServices(false);
    expect(await showLesion({ ...services, segmentationService: undefined }, lesions)).toBeUndefined();
  });
});
