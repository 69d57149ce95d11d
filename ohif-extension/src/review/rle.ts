/**
 * The correction's label-map encoding (docs/tumor-board.md, "Correction"): per CT image, its
 * labels in row-major order (row 0 first, column fastest) as `[segment number, run length]`
 * pairs summing to rows x columns. Run lengths keep a 512 x 512 x 300 label map, almost all
 * background, to a few kilobytes of JSON.
 */

export type Run = [segment: number, length: number];

/** Runs of `labels` (row-major), adjacent equal values merged; empty input gives no runs. */
export function encodeRle(labels: ArrayLike<number>): Run[] {
  const runs: Run[] = [];
  const n = labels.length;
  let i = 0;
  while (i < n) {
    const value = labels[i] as number;
    let j = i + 1;
    while (j < n && labels[j] === value) j++;
    runs.push([value, j - i]);
    i = j;
  }
  return runs;
}

/** The label map of `runs` (the inverse of encodeRle); throws on a negative or fractional run. */
export function decodeRle(runs: readonly Run[], size?: number): Uint16Array {
  const total = rleSum(runs);
  if (size !== undefined && total !== size) throw new Error(`runs sum to ${total}, not ${size}`);
  const out = new Uint16Array(total);
  let at = 0;
  for (const [segment, length] of runs) {
    out.fill(segment, at, at + length);
    at += length;
  }
  return out;
}

/** The number of pixels `runs` cover. */
export function rleSum(runs: readonly Run[]): number {
  let total = 0;
  for (const [, length] of runs) {
    if (!Number.isInteger(length) || length <= 0) throw new Error(`invalid run length ${length}`);
    total += length;
  }
  return total;
}

/** The segment numbers `runs` use, ascending, background (0) left out. */
export function rleSegments(runs: readonly Run[]): number[] {
  return [...new Set(runs.map(([s]) => s).filter((s) => s !== 0))].sort((a, b) => a - b);
}

/** One CT image's label map as the node receives it. */
export interface CorrectionFrame {
  sop_instance_uid: string;
  rle: Run[];
}

/** One labelmap slice read from the viewer: the CT image it lies on and its labels. */
export interface LabelmapSlice {
  sopInstanceUid: string;
  labels: ArrayLike<number>;
}

/**
 * The `frames` of a correction, in the CT series' image order (`ctSopOrder`, the display set's
 * instances). Every CT image must have a slice of rows x columns labels: a missing slice or a
 * wrong size is refused here rather than by the node, so the radiologist sees why.
 */
export function correctionFrames(
  slices: readonly LabelmapSlice[],
  ctSopOrder: readonly string[],
  rows: number,
  columns: number,
): CorrectionFrame[] {
  const bySop = new Map(slices.map((s) => [s.sopInstanceUid, s]));
  return ctSopOrder.map((sop) => {
    const slice = bySop.get(sop);
    if (slice === undefined) throw new Error(`no labelmap slice for CT image ${ctSopOrder.indexOf(sop) + 1}`);
    if (slice.labels.length !== rows * columns) {
      throw new Error(`labelmap slice ${ctSopOrder.indexOf(sop) + 1} has ${slice.labels.length} pixels, not ${rows} x ${columns}`);
    }
    return { sop_instance_uid: sop, rle: encodeRle(slice.labels) };
  });
}

/** Pixels whose label differs between two encodings of the same image (indices, row-major). */
export function changedPixels(before: readonly Run[], after: readonly Run[]): number[] {
  const a = decodeRle(before);
  const b = decodeRle(after);
  if (a.length !== b.length) throw new Error(`sizes differ: ${a.length} and ${b.length}`);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}
