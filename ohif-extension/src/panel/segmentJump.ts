/**
 * Jump the active viewport to a segment's centre once OHIF can.
 *
 * OHIF's `jumpToSegmentCenter` moves only the viewports that already show the segmentation, to
 * the centre OHIF keeps in the segment's `cachedStats` (the SEG loader's centroid); when either
 * is missing it does nothing, silently. Right after a study opens (the SEG parsed, its labelmap
 * not yet on the viewport) a click on a panel row was lost that way: the row was selected and
 * the slice never moved (seen in the full-size OHIF test under load). So the jump waits, polling,
 * until the segmentation is on the active viewport and the segment's centre is known, and is
 * cancelled by the next selection.
 */
import type { Segment, Services } from "../ohifTypes";

/** How often the jump checks whether OHIF is ready, and for how long it keeps trying. */
export interface JumpTiming {
  intervalMs: number;
  timeoutMs: number;
  /** Injected for tests: the browser's timers by default. */
  setTimer?: (callback: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export const DEFAULT_JUMP_TIMING: JumpTiming = { intervalMs: 200, timeoutMs: 30_000 };

/** The world centre OHIF holds for `segment`, when it holds one. */
export function segmentCentre(segment: Segment | undefined): [number, number, number] | undefined {
  const world = segment?.cachedStats?.center?.world ?? segment?.cachedStats?.namedStats?.center?.value;
  if (!Array.isArray(world) || world.length !== 3 || !world.every((v) => Number.isFinite(v))) return undefined;
  return [world[0] as number, world[1] as number, world[2] as number];
}

/**
 * The active viewport when it shows `segmentationId` and OHIF knows where `segmentIndex` is;
 * undefined while either is missing.
 */
export function readyViewport(services: Services, segmentationId: string, segmentIndex: number): string | undefined {
  const segmentation = services.segmentationService;
  const viewportId = services.viewportGridService?.getState().activeViewportId ?? undefined;
  if (segmentation === undefined || viewportId === undefined) return undefined;
  const segments = segmentation.getSegmentation(segmentationId)?.segments;
  if (segmentCentre(segments?.[String(segmentIndex)]) === undefined) return undefined;
  if (segmentation.getSegmentationRepresentations(viewportId, { segmentationId }).length === 0) return undefined;
  return viewportId;
}

/**
 * Make `segmentIndex` active and jump the active viewport to its centre (with OHIF's flash), now
 * or as soon as OHIF can; after `timeoutMs` it tries once more whatever the state. Returns a
 * function that cancels a jump still waiting.
 */
export function jumpToSegmentWhenReady(
  services: Services,
  segmentationId: string,
  segmentIndex: number,
  timing: JumpTiming = DEFAULT_JUMP_TIMING,
): () => void {
  const setTimer = timing.setTimer ?? ((callback: () => void, ms: number) => setTimeout(callback, ms));
  const clearTimer = timing.clearTimer ?? ((handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>));
  let handle: unknown;
  let waited = 0;
  const attempt = (): void => {
    handle = undefined;
    const viewportId = readyViewport(services, segmentationId, segmentIndex);
    if (viewportId !== undefined || waited >= timing.timeoutMs) {
      services.segmentationService?.jumpToSegmentCenter(segmentationId, segmentIndex, viewportId, 0.9, true, 400, false);
      return;
    }
    waited += timing.intervalMs;
    handle = setTimer(attempt, timing.intervalMs);
  };
  // The list shows the segment active at once, whether or not the slice can move yet.
  if (services.segmentationService?.getSegmentation(segmentationId) !== undefined) {
    services.segmentationService.setActiveSegment(segmentationId, segmentIndex);
  }
  attempt();
  return () => {
    if (handle !== undefined) clearTimer(handle);
    handle = undefined;
  };
}
