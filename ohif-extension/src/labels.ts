/** The label map of `pancreas_contracts.labels`, exported to JSON by scripts/export_ohif_labels.py. */
import document from "./generated/labels.json";

export interface LabelInfo {
  value: number;
  name: string;
  display: string;
  rgb: [number, number, number];
  property_type: { value: string; scheme: string; meaning: string };
}

export type CategoryLabel = "resectable" | "borderline" | "locally advanced";

export interface LabelsDocument {
  labels: LabelInfo[];
  vessel_segments: Record<string, string>;
  key_vessels: string[];
  rule: { arterial: string[]; venous: string[]; threshold_deg: number };
  categories: CategoryLabel[];
  notice: string;
}

/** Check the generated document's shape once, at load. */
export function parseLabelsDocument(raw: unknown): LabelsDocument {
  const doc = raw as Partial<LabelsDocument> | null;
  const ok =
    doc !== null &&
    Array.isArray(doc.labels) &&
    doc.labels.every((l) => Array.isArray(l.rgb) && l.rgb.length === 3) &&
    Array.isArray(doc.key_vessels) &&
    Array.isArray(doc.categories) &&
    doc.categories.length === 3 &&
    typeof doc.notice === "string" &&
    doc.rule !== undefined &&
    doc.vessel_segments !== undefined;
  if (!ok) throw new Error("labels.json is malformed: run `npm run labels`");
  return doc as LabelsDocument;
}

export const LABELS: LabelsDocument = parseLabelsDocument(document);

export function labelByName(name: string, doc: LabelsDocument = LABELS): LabelInfo | undefined {
  return doc.labels.find((label) => label.name === name);
}

/** The key vessel (SMA, CA, CHA, SMV, PV) whose segment has this SNOMED code, if any. */
export function vesselForCode(
  code: { value: string; scheme: string },
  doc: LabelsDocument = LABELS,
): string | undefined {
  const label = doc.labels.find(
    (l) => l.property_type.value === code.value && l.property_type.scheme === code.scheme,
  );
  if (label === undefined) return undefined;
  return Object.entries(doc.vessel_segments).find(([, name]) => name === label.name)?.[0];
}

export function cssColor(rgb: readonly [number, number, number]): string {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}
