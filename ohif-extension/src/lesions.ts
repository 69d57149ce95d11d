/**
 * The PDAC detector's lesion SEG (result 1.5, issue 23): a second DICOM SEG the node writes
 * beside the anatomical one (`seg-detection.dcm`, `inference.seg_writer.build_lesion_seg`), one
 * segment per reported lesion. The hanging protocol never hangs it by default; the panel's
 * "PDAC detection" row shows it over the CT on request. Pure logic, unit-tested.
 */
import type { DisplaySet, Segment } from "./ohifTypes";

/** `inference.dicom_codes.DETECTION_SEG_SERIES_NUMBER` (a pytest checks they agree). */
export const DETECTION_SEG_SERIES_NUMBER = 9004;
/** `inference.dicom_codes.DETECTION_SEG_SERIES_DESCRIPTION` (a pytest checks they agree). */
export const DETECTION_SEG_SERIES_DESCRIPTION = "PancreasAI PDAC detection (investigational)";

/** Whether a display set is the node's lesion SEG (by its series number or description). */
export function isLesionSeg(displaySet: DisplaySet): boolean {
  return (
    displaySet.Modality === "SEG" &&
    (displaySet.SeriesDescription === DETECTION_SEG_SERIES_DESCRIPTION ||
      Number(displaySet.SeriesNumber) === DETECTION_SEG_SERIES_NUMBER)
  );
}

/** The study's lesion SEG (the last one listed: the newest analysis), if it has one. */
export function lesionSegOf(displaySets: readonly DisplaySet[]): DisplaySet | undefined {
  return displaySets.filter(isLesionSeg).at(-1);
}

/** The lesion segments' numbers, ascending (segment `n` is the detector's `n`-th lesion on the CT). */
export function lesionSegmentNumbers(segments: Record<string, Segment | undefined> | undefined): number[] {
  const numbers = Object.entries(segments ?? {}).flatMap(([key, segment]) => {
    const n = segment?.segmentIndex ?? Number(key);
    return Number.isInteger(n) && n > 0 ? [n] : [];
  });
  return [...new Set(numbers)].sort((a, b) => a - b);
}

/** The lesion to show next: the first, then each following one in turn, then the first again. */
export function nextLesion(current: number | undefined, numbers: readonly number[]): number | undefined {
  if (numbers.length === 0) return undefined;
  if (current === undefined) return numbers[0];
  return numbers.find((n) => n > current) ?? numbers[0];
}

export type LesionState = "idle" | "loading" | "shown" | "failed";

/** The show-lesions control's label. */
export function lesionButtonText(state: LesionState, shown: number | undefined, count: number): string {
  if (state === "loading") return "Loading lesions…";
  if (state === "failed") return "Lesion SEG could not be shown";
  if (state === "shown" && shown !== undefined) {
    return count > 1 ? `Lesion ${shown} of ${count} · next` : `Lesion ${shown} shown`;
  }
  return "Show lesions";
}
