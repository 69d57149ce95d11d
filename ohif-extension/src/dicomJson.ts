/**
 * The DICOM JSON model (PS3.18 F.2) as DICOMweb returns it, and small typed readers.
 */

export interface DicomJsonElement {
  vr: string;
  Value?: unknown[];
  BulkDataURI?: string;
  InlineBinary?: string;
}

export type DicomJsonDataset = Record<string, DicomJsonElement | undefined>;

export const Tags = {
  StudyInstanceUID: "0020000D",
  SeriesInstanceUID: "0020000E",
  SOPInstanceUID: "00080018",
  SOPClassUID: "00080016",
  Modality: "00080060",
  StudyDate: "00080020",
  StudyDescription: "00081030",
  PatientID: "00100020",
  PatientName: "00100010",
  AccessionNumber: "00080050",
  SeriesDescription: "0008103E",
  ConceptNameCodeSequence: "0040A043",
  ConceptCodeSequence: "0040A168",
  ContentSequence: "0040A730",
  ValueType: "0040A040",
  RelationshipType: "0040A010",
  MeasuredValueSequence: "0040A300",
  NumericValue: "0040A30A",
  MeasurementUnitsCodeSequence: "004008EA",
  TextValue: "0040A160",
  UID: "0040A124",
  ReferencedSOPSequence: "00081199",
  ReferencedSOPInstanceUID: "00081155",
  ReferencedSegmentNumber: "0062000B",
  CodeValue: "00080100",
  CodingSchemeDesignator: "00080102",
  CodeMeaning: "00080104",
  ContentDate: "00080023",
  ContentTime: "00080033",
} as const;

export interface CodedConcept {
  value: string;
  scheme: string;
  meaning: string;
}

function values(ds: DicomJsonDataset | undefined, tag: string): unknown[] {
  return ds?.[tag]?.Value ?? [];
}

export function str(ds: DicomJsonDataset | undefined, tag: string): string | undefined {
  const first = values(ds, tag)[0];
  if (typeof first === "string") return first;
  if (typeof first === "number") return String(first);
  if (first !== null && typeof first === "object" && "Alphabetic" in first) {
    const name = (first as { Alphabetic?: unknown }).Alphabetic;
    return typeof name === "string" ? name : undefined;
  }
  return undefined;
}

export function num(ds: DicomJsonDataset | undefined, tag: string): number | undefined {
  const first = values(ds, tag)[0];
  if (typeof first === "number") return first;
  if (typeof first === "string" && first.trim() !== "") {
    const parsed = Number(first);
    return Number.isFinite(parsed) ? parsed : undefined;
  }
  return undefined;
}

export function seq(ds: DicomJsonDataset | undefined, tag: string): DicomJsonDataset[] {
  return values(ds, tag).filter(
    (item): item is DicomJsonDataset => item !== null && typeof item === "object",
  );
}

export function code(ds: DicomJsonDataset | undefined, tag: string): CodedConcept | undefined {
  const item = seq(ds, tag)[0];
  if (item === undefined) return undefined;
  const value = str(item, Tags.CodeValue);
  const scheme = str(item, Tags.CodingSchemeDesignator);
  if (value === undefined || scheme === undefined) return undefined;
  return { value, scheme, meaning: str(item, Tags.CodeMeaning) ?? value };
}

export function sameCode(a: CodedConcept | undefined, b: { value: string; scheme: string }): boolean {
  return a !== undefined && a.value === b.value && a.scheme === b.scheme;
}
