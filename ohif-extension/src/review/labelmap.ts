/**
 * The bridge to OHIF's own segmentation editing: activate cornerstone's brush / eraser (the
 * segmentation mode's tool group defines `CircularBrush` and `CircularEraser`) on the AI SEG's
 * labelmap in the active viewport, and read that labelmap back, per CT image, for a correction.
 *
 * OHIF 3.13 keeps a SEG's labelmap as one derived image per referenced CT image (cornerstone3D's
 * stack labelmap: `representationData.Labelmap.imageIds` beside `referencedImageIds`, the CT
 * series' imageIds in the same order). The host's cornerstone is reached through the globals
 * its cornerstone extension sets (`window.cornerstone`): a bundled copy of @cornerstonejs/core
 * would have its own, empty cache.
 */
import type { DisplaySet, Services } from "../ohifTypes";
import type { LabelmapSlice } from "./rle";

export const BRUSH_TOOL = "CircularBrush";
export const ERASER_TOOL = "CircularEraser";
/** The mode's primary tool, given back when editing stops. */
export const DEFAULT_PRIMARY_TOOL = "WindowLevel";
const PRIMARY = { mouseButton: 1 };

interface VoxelManager {
  getScalarData?(): ArrayLike<number>;
  getCompleteScalarDataArray?(): ArrayLike<number>;
}

interface CachedImage {
  rows?: number;
  columns?: number;
  referencedImageId?: string;
  voxelManager?: VoxelManager;
  getPixelData?(): ArrayLike<number>;
}

interface CachedVolume {
  dimensions?: [number, number, number];
  voxelManager?: VoxelManager;
}

export interface CornerstoneGlobal {
  cache: { getImage(id: string): CachedImage | undefined; getVolume?(id: string): CachedVolume | undefined };
  metaData?: { get(type: string, imageId: string): unknown };
}

interface LabelmapData {
  imageIds?: string[];
  referencedImageIds?: string[];
  volumeId?: string;
}

interface SegmentationState {
  representationData?: { Labelmap?: LabelmapData };
}

export interface ToolGroup {
  setToolActive(name: string, options?: { bindings: Array<{ mouseButton: number }> }): void;
  setToolPassive(name: string): void;
  getActivePrimaryMouseButtonTool?(): string | undefined;
  hasTool?(name: string): boolean;
}

function cornerstone(): CornerstoneGlobal | undefined {
  return (globalThis as { cornerstone?: CornerstoneGlobal }).cornerstone;
}

function activeViewportId(services: Services): string | undefined {
  return services.viewportGridService?.getState().activeViewportId ?? undefined;
}

/** The SOP Instance UID of a CT imageId (cornerstone's instance metadata, else the WADO-RS URL). */
export function sopOfImageId(imageId: string, cs: CornerstoneGlobal | undefined = cornerstone()): string | undefined {
  const instance = cs?.metaData?.get("instance", imageId) as { SOPInstanceUID?: unknown } | undefined;
  if (typeof instance?.SOPInstanceUID === "string") return instance.SOPInstanceUID;
  const m = /\/instances\/([0-9.]+)/.exec(imageId) ?? /[?&]objectUID=([0-9.]+)/.exec(imageId);
  return m?.[1];
}

export interface EditTarget {
  segmentationId: string;
  segSopInstanceUid: string;
  referencedSeriesInstanceUid: string;
}

/** The AI SEG as the viewer loaded it: its segmentation id, SOP Instance UID and CT series. */
export function editTarget(services: Services, seg: DisplaySet | undefined): EditTarget | undefined {
  const sop = seg?.instances?.[0]?.SOPInstanceUID;
  if (seg === undefined || sop === undefined) return undefined;
  const referenced =
    seg.referencedSeriesInstanceUID ??
    services.displaySetService.getDisplaySetByUID?.(seg.referencedDisplaySetInstanceUID ?? "")?.SeriesInstanceUID;
  if (referenced === undefined) return undefined;
  return { segmentationId: seg.displaySetInstanceUID, segSopInstanceUid: sop, referencedSeriesInstanceUid: referenced };
}

/**
 * Load the AI SEG's segmentation and show it in the active viewport when it is not there yet
 * (another SEG of the study, e.g. an earlier corrected version, may be the one hung): OHIF's
 * own way, as the lesion overlay does (`load`, then a labelmap representation). True when the
 * segmentation is loaded and shown.
 */
export async function ensureShown(services: Services, seg: DisplaySet): Promise<boolean> {
  const segmentation = services.segmentationService;
  const viewportId = activeViewportId(services);
  if (segmentation === undefined || viewportId === undefined) return false;
  const id = seg.displaySetInstanceUID;
  if (segmentation.getSegmentation(id) === undefined) {
    if (seg.load === undefined) return false;
    await seg.load({ headers: services.userAuthenticationService?.getAuthorizationHeader() ?? {} });
  }
  if (segmentation.getSegmentation(id) === undefined) return false;
  if (segmentation.getSegmentationRepresentations(viewportId, { segmentationId: id }).length === 0) {
    await segmentation.addSegmentationRepresentation(viewportId, { segmentationId: id, type: "Labelmap" });
  }
  return true;
}

function toolGroupOf(services: Services): ToolGroup | undefined {
  const viewportId = activeViewportId(services);
  if (viewportId === undefined) return undefined;
  return services.toolGroupService?.getToolGroupForViewport(viewportId) ?? undefined;
}

/**
 * Make the AI SEG the viewport's active segmentation, `segmentIndex` its active segment, and
 * `tool` (brush or eraser) the primary mouse button's tool. False when the viewer lacks the
 * tool group or the segmentation.
 */
export function startEditing(services: Services, target: EditTarget, segmentIndex: number, tool: string = BRUSH_TOOL): boolean {
  const viewportId = activeViewportId(services);
  const segmentation = services.segmentationService;
  const group = toolGroupOf(services);
  if (viewportId === undefined || segmentation === undefined || group === undefined) return false;
  if (segmentation.getSegmentation(target.segmentationId) === undefined) return false;
  if (group.hasTool !== undefined && !group.hasTool(tool)) return false;
  segmentation.setActiveSegmentation?.(viewportId, target.segmentationId);
  segmentation.setActiveSegment(target.segmentationId, segmentIndex);
  const current = group.getActivePrimaryMouseButtonTool?.();
  if (current !== undefined && current !== tool) group.setToolPassive(current);
  group.setToolActive(tool, { bindings: [PRIMARY] });
  return true;
}

/** Give the primary mouse button back to the mode's default tool (window/level). */
export function stopEditing(services: Services): void {
  const group = toolGroupOf(services);
  if (group === undefined) return;
  const current = group.getActivePrimaryMouseButtonTool?.();
  if (current !== undefined && current !== DEFAULT_PRIMARY_TOOL) group.setToolPassive(current);
  group.setToolActive(DEFAULT_PRIMARY_TOOL, { bindings: [PRIMARY] });
}

export interface LabelmapRead {
  rows: number;
  columns: number;
  /** The CT images in the series' imageIds order (the labelmap's slice order). */
  ctSopOrder: string[];
  slices: LabelmapSlice[];
}

function scalars(vm: VoxelManager | undefined, image?: CachedImage): ArrayLike<number> | undefined {
  return vm?.getScalarData?.() ?? vm?.getCompleteScalarDataArray?.() ?? image?.getPixelData?.();
}

/**
 * The edited labelmap of `segmentationId`, one slice per CT image. Reads each derived labelmap
 * image (what the brush writes to); a labelmap OHIF turned into a volume is sliced by its
 * imageIds' order instead.
 */
export function readLabelmap(services: Services, segmentationId: string, cs: CornerstoneGlobal | undefined = cornerstone()): LabelmapRead {
  if (cs === undefined) throw new Error("the viewer's cornerstone is not available");
  const state = services.segmentationService?.getSegmentation(segmentationId) as SegmentationState | undefined;
  const data = state?.representationData?.Labelmap;
  const imageIds = data?.imageIds ?? [];
  if (imageIds.length === 0) throw new Error("the AI segmentation has no labelmap images (is it loaded?)");
  const images = imageIds.map((id) => cs.cache.getImage(id));
  const referenced = imageIds.map((_, k) => data?.referencedImageIds?.[k] ?? images[k]?.referencedImageId);
  const first = images.find((i) => i !== undefined);
  const rows = first?.rows;
  const columns = first?.columns;
  if (rows === undefined || columns === undefined) throw new Error("the labelmap's size is unknown");
  const volume = data?.volumeId === undefined ? undefined : cs.cache.getVolume?.(data.volumeId);
  const volumeData = volume === undefined ? undefined : scalars(volume.voxelManager);
  const size = rows * columns;
  const slices: LabelmapSlice[] = [];
  const ctSopOrder: string[] = [];
  imageIds.forEach((_, k) => {
    const ref = referenced[k];
    const sop = ref === undefined ? undefined : sopOfImageId(ref, cs);
    if (sop === undefined) throw new Error(`labelmap slice ${k + 1} names no CT image`);
    const labels = volumeData !== undefined ? sliceOf(volumeData, k, size) : scalars(images[k]?.voxelManager, images[k]);
    if (labels === undefined) throw new Error(`labelmap slice ${k + 1} is not in the viewer's cache`);
    ctSopOrder.push(sop);
    slices.push({ sopInstanceUid: sop, labels });
  });
  return { rows, columns, ctSopOrder, slices };
}

function sliceOf(data: ArrayLike<number>, k: number, size: number): ArrayLike<number> {
  const array = data as ArrayLike<number> & { subarray?: (a: number, b: number) => ArrayLike<number> };
  if (array.subarray !== undefined) return array.subarray(k * size, (k + 1) * size);
  return Array.from({ length: size }, (_, i) => data[k * size + i] as number);
}

/** The segments of the AI segmentation a brush may paint: number and label, background left out. */
export function paintableSegments(services: Services, segmentationId: string): Array<{ index: number; label: string }> {
  const segments = services.segmentationService?.getSegmentation(segmentationId)?.segments ?? {};
  return Object.entries(segments)
    .map(([key, s]) => ({ index: s?.segmentIndex ?? Number(key), label: s?.label ?? `Segment ${key}` }))
    .filter((s) => Number.isInteger(s.index) && s.index > 0)
    .sort((a, b) => a.index - b.index);
}
