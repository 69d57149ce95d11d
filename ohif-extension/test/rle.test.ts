import { describe, expect, it } from "vitest";
import { changedPixels, correctionFrames, decodeRle, encodeRle, rleSegments, rleSum } from "../src/review/rle";

/** A deterministic pseudo-random generator (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A label map of mostly background with blobs of a few segments (what a SEG slice looks like). */
function labelMap(random: () => number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let i = 0;
  while (i < size) {
    const length = 1 + Math.floor(random() * 40);
    const segment = random() < 0.6 ? 0 : 1 + Math.floor(random() * 15);
    out.fill(segment, i, Math.min(size, i + length));
    i += length;
  }
  return out;
}

describe("RLE of a label map (docs/tumor-board.md, Correction)", () => {
  it("encodes row-major runs as [segment, length], adjacent equal labels merged", () => {
    // 2 rows x 4 columns: row 0 first, column fastest.
    expect(encodeRle([0, 0, 3, 3, 3, 0, 0, 0])).toEqual([[0, 2], [3, 3], [0, 3]]);
    expect(encodeRle(new Uint8Array(512 * 512))).toEqual([[0, 512 * 512]]);
    expect(encodeRle([7])).toEqual([[7, 1]]);
    expect(encodeRle([])).toEqual([]);
  });

  it("round-trips random label maps, runs summing to rows x columns", () => {
    const random = prng(26);
    for (let trial = 0; trial < 50; trial++) {
      const rows = 1 + Math.floor(random() * 64);
      const columns = 1 + Math.floor(random() * 64);
      const labels = labelMap(random, rows * columns);
      const runs = encodeRle(labels);
      expect(rleSum(runs)).toBe(rows * columns);
      expect(Array.from(decodeRle(runs, rows * columns))).toEqual(Array.from(labels));
      // No two neighbouring runs carry the same segment (the shortest encoding).
      expect(runs.every((run, k) => k === 0 || run[0] !== runs[k - 1]?.[0])).toBe(true);
      expect(runs.every(([, n]) => Number.isInteger(n) && n > 0)).toBe(true);
    }
  });

  it("refuses runs that do not cover the image, or are empty", () => {
    expect(() => decodeRle([[0, 10]], 12)).toThrow(/sum to 10, not 12/);
    expect(() => rleSum([[0, 0]])).toThrow(/invalid run length 0/);
    expect(() => rleSum([[0, 2.5]])).toThrow(/invalid run length/);
  });

  it("lists the segments used and the pixels that changed", () => {
    const before = encodeRle([0, 0, 0, 0, 1, 1]);
    const after = encodeRle([0, 3, 3, 0, 1, 0]);
    expect(rleSegments(after)).toEqual([1, 3]);
    expect(changedPixels(before, after)).toEqual([1, 2, 5]);
  });
});

describe("correction frames", () => {
  const slice = (sop: string, labels: number[]) => ({ sopInstanceUid: sop, labels });

  it("are in the CT series' order, one per image, whatever order the slices came in", () => {
    const frames = correctionFrames([slice("1.3", [0, 0, 0, 2]), slice("1.1", [0, 0, 0, 0]), slice("1.2", [5, 5, 0, 0])], ["1.1", "1.2", "1.3"], 2, 2);
    expect(frames).toEqual([
      { sop_instance_uid: "1.1", rle: [[0, 4]] },
      { sop_instance_uid: "1.2", rle: [[5, 2], [0, 2]] },
      { sop_instance_uid: "1.3", rle: [[0, 3], [2, 1]] },
    ]);
  });

  it("refuse a CT image without a labelmap slice, or a slice of another size", () => {
    expect(() => correctionFrames([slice("1.1", [0, 0, 0, 0])], ["1.1", "1.2"], 2, 2)).toThrow(/no labelmap slice for CT image 2/);
    expect(() => correctionFrames([slice("1.1", [0, 0, 0])], ["1.1"], 2, 2)).toThrow(/3 pixels, not 2 x 2/);
  });
});
