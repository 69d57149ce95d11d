/**
 * The `pancreas-ai` mode's hanging protocol: one stack viewport with the study's CT, and the
 * node's SEG over it when the study has one, whatever else the study holds.
 *
 * Why not OHIF's `@ohif/seg` (issue 20, item 5): it hangs the *SEG* display set (its only
 * selector is Modality = SEG) and is meant for studies that have one. On a study without a SEG
 * (not yet processed) that holds an RTSTRUCT, the viewport is left unmatched, the RTSTRUCT gets
 * hydrated as contours into the CT stack viewport (console: "A segmentation representation of
 * type Contour already exists in viewport default"), the viewport is re-created and a pending
 * `setImageIdIndex` of the old one throws "The stack viewport has been destroyed": error
 * boundary, toast "Something went wrong", black viewport.
 *
 * Here one selector ranks what the viewport may show — a SEG or a series with images that is
 * not an overlay (required; so never an RTSTRUCT, KO, PR, SR or PDF): the SEG first (OHIF shows
 * an overlay display set over the images it references, the CT, as with @ohif/seg), else the
 * image series a SEG references, a CT, reconstructable — by what the series are, not by their
 * order. RTSTRUCT, KO, PR, SR and PDF series are only listed with the thumbnails; an RTSTRUCT
 * opens in OHIF's RT viewport when the user double-clicks or drops it.
 *
 * The PDAC detector's lesion SEG (series 9004, `src/lesions.ts`) and the lymph-node SEG (series
 * 9005, `src/lymphNodes.ts`) are no candidates either: the anatomical SEG is the one hung over the
 * CT; the panel's "Show lesions" and its lymph-node list add them to the viewport as further
 * overlays.
 */
import { isLesionSeg } from "./lesions";
import { isNodeSeg } from "./lymphNodes";
import type { DisplaySet, HangingProtocolService } from "./ohifTypes";

export const PROTOCOL_ID = "@pancreas-ai/ct-seg";
/** Custom hanging-protocol attributes (registered by the extension's `preRegistration`). */
export const CANDIDATE_ATTRIBUTE = "pancreasAiViewportCandidate";
export const SEG_REFERENCED_ATTRIBUTE = "pancreasAiReferencedBySeg";

/** A display set the stack viewport can show as its base image: images, not an overlay. */
export function isImageSeries(displaySet: DisplaySet): boolean {
  return (
    Array.isArray(displaySet.images) &&
    displaySet.images.length > 0 &&
    displaySet.isOverlayDisplaySet !== true &&
    displaySet.unsupported !== true
  );
}

/**
 * What the viewport may hang: a SEG (shown over its images) other than the detector's lesion SEG
 * and the lymph-node SEG, or an image series.
 */
export function isViewportCandidate(displaySet: DisplaySet): boolean {
  return (
    (displaySet.Modality === "SEG" && !isLesionSeg(displaySet) && !isNodeSeg(displaySet)) ||
    isImageSeries(displaySet)
  );
}

/** Whether a SEG among `all` references this display set's series. */
export function isReferencedBySeg(displaySet: DisplaySet, all: readonly DisplaySet[]): boolean {
  return all.some(
    (other) =>
      other.Modality === "SEG" &&
      displaySet.SeriesInstanceUID !== undefined &&
      (other.referencedSeriesInstanceUID === displaySet.SeriesInstanceUID ||
        other.referencedDisplaySetInstanceUID === displaySet.displaySetInstanceUID),
  );
}

export function registerProtocolAttributes(
  hangingProtocolService: HangingProtocolService,
  activeDisplaySets: () => DisplaySet[],
): void {
  hangingProtocolService.addCustomAttribute(CANDIDATE_ATTRIBUTE, "A SEG or an image series", (ds) =>
    isViewportCandidate(ds),
  );
  hangingProtocolService.addCustomAttribute(SEG_REFERENCED_ATTRIBUTE, "Referenced by a SEG", (ds) =>
    isReferencedBySeg(ds, activeDisplaySets()),
  );
}

const isTrue = { equals: { value: true } };
const MAIN = "mainDisplaySetId";
// As @ohif/seg: the SEG viewport hydrates the SEG into the viewport that shows its CT.
const viewportOptions = {
  viewportType: "stack",
  toolGroupId: "default",
  allowUnmatchedView: true,
  syncGroups: [{ type: "hydrateseg", id: "sameFORId", source: true, target: true }],
};

export const protocol = {
  id: PROTOCOL_ID,
  name: "Pancreas AI: CT with the AI segmentation",
  // Applied only when a mode names it.
  protocolMatchingRules: [],
  toolGroupIds: ["default"],
  numberOfPriorsReferenced: 0,
  defaultViewport: {
    viewportOptions,
    displaySets: [{ id: MAIN, matchedDisplaySetsIndex: -1 }],
  },
  displaySetSelectors: {
    [MAIN]: {
      seriesMatchingRules: [
        { attribute: CANDIDATE_ATTRIBUTE, required: true, constraint: isTrue },
        // The node's SEG, shown by OHIF over the CT it references (as @ohif/seg hangs it) ...
        { attribute: "Modality", weight: 100, constraint: { equals: "SEG" } },
        // ... else the image series: the one a SEG references, a CT, reconstructable.
        { attribute: SEG_REFERENCED_ATTRIBUTE, weight: 40, constraint: isTrue },
        { attribute: "Modality", weight: 20, constraint: { equals: "CT" } },
        { attribute: "isReconstructable", weight: 10, constraint: isTrue },
      ],
    },
  },
  stages: [
    {
      name: "CT with SEG",
      viewportStructure: { layoutType: "grid", properties: { rows: 1, columns: 1 } },
      // One display set per viewport: OHIF 3.13 refuses to drop another series into a viewport
      // whose protocol lists several ("Cannot update viewport with multiple displaySets yet").
      viewports: [{ viewportOptions, displaySets: [{ id: MAIN }] }],
    },
  ],
};

export function getHangingProtocolModule(): Array<{ name: string; protocol: typeof protocol }> {
  return [{ name: PROTOCOL_ID, protocol }];
}
