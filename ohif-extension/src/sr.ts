/**
 * Parse the node's TID 1500 Measurement Report (Comprehensive 3D SR, written by
 * inference/sr_writer.py) from its DICOM JSON, as DICOMweb's `/metadata` returns it.
 *
 * Everything is found by coded concept, never by position: measurement groups (DCM 125007),
 * their referenced segment (DCM 121191) and finding (DCM 121071), numeric measurements
 * (volume SCT 118565006, diameter SCT 81827009, angle SCT 1483009), the private 99PANCAI
 * codes of the assessment group and the "Qualitative Evaluations" container.
 */
import {
  code,
  type CodedConcept,
  type DicomJsonDataset,
  num,
  sameCode,
  seq,
  str,
  Tags,
} from "./dicomJson";
import { type CategoryLabel, LABELS, type LabelsDocument, labelByName, vesselForCode } from "./labels";
import type { LymphNode, LymphNodeAssessment } from "./lymphNodes";
import { type ComponentModel, horizons, type StageInput, stageInput, type SurvivalPrognosis, type TnmKey } from "./prognosis";
import { type DomainGrade, type PancreasResult, ResultParseError, type SegmentRef } from "./result";

const P = "99PANCAI";
export const COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34";
export const SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4";

const C = {
  measurementGroup: { value: "125007", scheme: "DCM" },
  imagingMeasurements: { value: "126010", scheme: "DCM" },
  qualitative: { value: "C0034375", scheme: "UMLS" },
  finding: { value: "121071", scheme: "DCM" },
  referencedSegment: { value: "121191", scheme: "DCM" },
  sourceSeries: { value: "121232", scheme: "DCM" },
  volume: { value: "118565006", scheme: "SCT" },
  diameter: { value: "81827009", scheme: "SCT" },
  angle: { value: "1483009", scheme: "SCT" },
  algorithmName: { value: "111001", scheme: "DCM" },
  algorithmVersion: { value: "111003", scheme: "DCM" },
  algorithmParameters: { value: "111002", scheme: "DCM" },
  yes: { value: "373066001", scheme: "SCT" },
  absent: { value: "272519000", scheme: "SCT" },
  tumorSegmented: { value: "TUMOR-SEG", scheme: P },
  networkCategory: { value: "NCCN-CAT", scheme: P },
  ruleCategory: { value: "RULE-CAT", scheme: P },
  disagreement: { value: "DISAGREE", scheme: P },
  probabilities: [
    { value: "P-R", scheme: P },
    { value: "P-BR", scheme: P },
    { value: "P-LA", scheme: P },
  ],
  uncertainty: { value: "UNCERT", scheme: P },
  localisation: { value: "LOC-CONF", scheme: P },
  notice: { value: "NOTICE", scheme: P },
  used: { value: "CLIN-USED", scheme: P },
  missing: { value: "CLIN-MISS", scheme: P },
  imputed: { value: "CLIN-IMP", scheme: P },
  knockedOut: { value: "CLIN-KO", scheme: P },
  registry: { value: "REG-STATUS", scheme: P },
  analysedSeries: { value: "SRC-SERIES", scheme: P },
  warning: { value: "WARNING", scheme: P },
  staging: { value: "NCCN-STAGE", scheme: P },
  outOfDomainStaging: { value: "OOD-STAGE", scheme: P },
  noPdacStaging: { value: "NOPDAC-STAGE", scheme: P },
  detection: { value: "PDAC-DET", scheme: P },
  domain: { value: "DOMAIN", scheme: P },
  domainReason: { value: "DOM-REASON", scheme: P },
  // Lymph nodes (result 1.6, inference/_sr_lymph_nodes.py)
  no: { value: "373067005", scheme: "SCT" },
  lymphNode: { value: "59441001", scheme: "SCT" },
  trackingIdentifier: { value: "112039", scheme: "DCM" },
  shortAxis: { value: "103340004", scheme: "SCT" },
  longAxis: { value: "103339001", scheme: "SCT" },
  probabilityOfCancer: { value: "111047", scheme: "DCM" },
  nodeStation: { value: "LN-STATION", scheme: P },
  nodeSuspicious: { value: "LN-SUSP", scheme: P },
  nEstimate: { value: "LN-STATUS", scheme: P },
  nPositive: { value: "LN-NPOS", scheme: P },
  n0: { value: "LN-N0", scheme: P },
  nProbability: { value: "LN-NPROB", scheme: P },
  nThreshold: { value: "LN-THR", scheme: P },
  // Survival prognosis (result 1.7, inference/_sr_survival.py)
  survivalPrognosis: { value: "SURV-PROG", scheme: P },
  deathBy: [
    { value: "SURV-D1Y", scheme: P },
    { value: "SURV-D2Y", scheme: P },
    { value: "SURV-D3Y", scheme: P },
  ],
  riskCutoff: { value: "SURV-THR", scheme: P },
  riskHorizon: { value: "SURV-HOR", scheme: P },
  riskGroup: { value: "SURV-RISK", scheme: P },
  highRisk: { value: "15508007", scheme: "SCT" },
  lowRisk: { value: "75976002", scheme: "SCT" },
  tnm: { T: { value: "SURV-T", scheme: P }, N: { value: "SURV-N", scheme: P }, M: { value: "SURV-M", scheme: P } },
  survivalNote: { value: "SURV-NOTE", scheme: P },
} as const;

const GRAPHIC_DATA = "00700022";

/** The training-domain grades (99PANCAI DOMAIN values, inference/dicom_codes.py). */
const DOMAIN_BY_CODE: Record<string, DomainGrade> = {
  "DOM-IN": "in-domain",
  "DOM-BORDER": "borderline",
  "DOM-OUT": "out-of-domain",
  "DOM-NA": "not-available",
};

const CATEGORY_BY_CODE: Record<string, CategoryLabel> = {
  "NCCN-R": "resectable",
  "NCCN-BR": "borderline",
  "NCCN-LA": "locally advanced",
};

interface Item {
  name: CodedConcept | undefined;
  valueType: string | undefined;
  ds: DicomJsonDataset;
}

function items(ds: DicomJsonDataset): Item[] {
  return seq(ds, Tags.ContentSequence).map((child) => ({
    name: code(child, Tags.ConceptNameCodeSequence),
    valueType: str(child, Tags.ValueType),
    ds: child,
  }));
}

function numeric(item: Item): number | undefined {
  const measured = seq(item.ds, Tags.MeasuredValueSequence)[0];
  return num(measured, Tags.NumericValue);
}

function findNum(group: Item[], concept: { value: string; scheme: string }): number | undefined {
  const item = group.find((i) => i.valueType === "NUM" && sameCode(i.name, concept));
  return item === undefined ? undefined : numeric(item);
}

function findCode(group: Item[], concept: { value: string; scheme: string }): CodedConcept | undefined {
  const item = group.find((i) => i.valueType === "CODE" && sameCode(i.name, concept));
  return item === undefined ? undefined : code(item.ds, Tags.ConceptCodeSequence);
}

function texts(group: Item[], concept: { value: string; scheme: string }): string[] {
  return group
    .filter((i) => i.valueType === "TEXT" && sameCode(i.name, concept))
    .map((i) => str(i.ds, Tags.TextValue))
    .filter((t): t is string => t !== undefined);
}

function category(concept: CodedConcept | undefined): CategoryLabel | undefined {
  return concept !== undefined && concept.scheme === P ? CATEGORY_BY_CODE[concept.value] : undefined;
}

function segmentOf(group: Item[]): SegmentRef | undefined {
  const image = group.find((i) => i.valueType === "IMAGE" && sameCode(i.name, C.referencedSegment));
  const ref = seq(image?.ds, Tags.ReferencedSOPSequence)[0];
  const segmentNumber = num(ref, Tags.ReferencedSegmentNumber);
  if (segmentNumber === undefined) return undefined;
  const segSopInstanceUid = str(ref, Tags.ReferencedSOPInstanceUID);
  return segSopInstanceUid === undefined ? { segmentNumber } : { segmentNumber, segSopInstanceUid };
}

/**
 * A node group (TID 1411 with the node SEG's segment, or TID 1410 with a SCOORD3D point at the
 * node's centre): finding SCT Lymph node, tracking identifier "Lymph node <node_id>".
 */
function lymphNodeOf(group: Item[]): LymphNode | undefined {
  const id = /(\d+)\s*$/.exec(texts(group, C.trackingIdentifier)[0] ?? "")?.[1];
  const shortAxisMm = findNum(group, C.shortAxis);
  const probability = findNum(group, C.probabilityOfCancer);
  if (id === undefined || shortAxisMm === undefined || probability === undefined) return undefined;
  const node: LymphNode = {
    nodeId: Number(id),
    shortAxisMm,
    probability,
    suspicious: sameCode(findCode(group, C.nodeSuspicious), C.yes),
  };
  // "8a: anterosuperior, along the common hepatic artery" or "not assigned"
  const station = texts(group, C.nodeStation)[0];
  const match = station === undefined ? null : /^([0-9]+[a-z0-9]*):\s*(.*)$/.exec(station);
  if (match?.[1] !== undefined) {
    node.station = match[1];
    if (match[2] !== undefined && match[2] !== "") node.stationDescription = match[2];
  }
  const longAxis = findNum(group, C.longAxis);
  if (longAxis !== undefined) node.longAxisMm = longAxis;
  const volume = findNum(group, C.volume);
  if (volume !== undefined) node.volumeMl = volume;
  const segment = segmentOf(group);
  if (segment !== undefined) node.segmentNumber = segment.segmentNumber;
  const point = group.find((i) => i.valueType === "SCOORD3D");
  const xyz = point?.ds[GRAPHIC_DATA]?.Value;
  if (Array.isArray(xyz) && xyz.length >= 3 && xyz.slice(0, 3).every((v) => typeof v === "number")) {
    node.centreLps = [Number(xyz[0]), Number(xyz[1]), Number(xyz[2])];
  }
  return node;
}

/** The patient's lymph-node group: the N estimate (LN-STATUS), its probability and threshold. */
function lymphNodeAssessmentOf(group: Item[]): Omit<LymphNodeAssessment, "nodes"> | undefined {
  const estimate = findCode(group, C.nEstimate);
  const probability = findNum(group, C.nProbability);
  const nEstimate = sameCode(estimate, C.nPositive) ? "N+" : sameCode(estimate, C.n0) ? "N0" : undefined;
  if (nEstimate === undefined || probability === undefined) return undefined;
  const threshold = findNum(group, C.nThreshold);
  return threshold === undefined ? { nEstimate, nPositiveProbability: probability } : { nEstimate, nPositiveProbability: probability, threshold };
}

/** A TNM input's TEXT: "T3 (source: node)" or "missing". */
function stageOf(key: TnmKey, text: string | undefined): StageInput | undefined {
  if (text === undefined) return undefined;
  if (text.trim() === "missing") return { key, source: "missing" };
  const match = /^(\S+) \(source: ([a-z-]+)\)$/.exec(text.trim());
  return match === null ? undefined : stageInput(key, match[1], match[2]);
}

/** "none" or "ct, tumor_mask, T" as a list. */
function listOf(text: string): string[] {
  return text.trim() === "none" ? [] : text.split(",").map((t) => t.trim()).filter((t) => t !== "");
}

/**
 * The prognosis group (TID 1501, finding type SURV-PROG): death by 1/2/3 years, the coded risk
 * group, the cut-off and its horizon, the TNM inputs and the notes (inputs used and missing,
 * component models' probabilities, warnings). The SR carries no reference curves.
 */
function prognosisOf(group: Item[]): SurvivalPrognosis | undefined {
  const death = horizons(C.deathBy.map((c) => findNum(group, c)));
  const cutoff = findNum(group, C.riskCutoff);
  const risk = findCode(group, C.riskGroup);
  const riskGroup = sameCode(risk, C.highRisk) ? "high" : sameCode(risk, C.lowRisk) ? "low" : undefined;
  if (death === undefined || cutoff === undefined || riskGroup === undefined) return undefined;
  const horizon = findNum(group, C.riskHorizon);
  const staging = (["T", "N", "M"] as const).flatMap((key) => {
    const input = stageOf(key, texts(group, C.tnm[key])[0]);
    return input === undefined ? [] : [input];
  });
  const out: SurvivalPrognosis = {
    deathProbability: death,
    riskGroup,
    riskHorizonYears: horizon === 1 || horizon === 2 ? horizon : 3,
    riskCutoff: cutoff,
    components: [],
    staging,
    referenceCurves: [],
    inputsUsed: [],
    inputsMissing: [],
    warnings: [],
  };
  for (const note of texts(group, C.survivalNote)) {
    const component = /^(\S+) model: death by 1\/2\/3 years ([0-9.]+)\/([0-9.]+)\/([0-9.]+)$/.exec(note);
    const p = component === null ? undefined : horizons(component.slice(2).map(Number));
    if (component?.[1] !== undefined && p !== undefined) {
      out.components.push({ name: component[1], deathProbability: p } satisfies ComponentModel);
    } else if (note.startsWith("inputs used: ")) {
      out.inputsUsed = listOf(note.slice("inputs used: ".length));
    } else if (note.startsWith("inputs missing: ")) {
      out.inputsMissing = listOf(note.slice("inputs missing: ".length));
    } else {
      out.warnings.push(note);
    }
  }
  const name = texts(group, C.algorithmName)[0];
  const version = texts(group, C.algorithmVersion)[0];
  if (name !== undefined) out.modelVersion = version === undefined ? name : `${name} ${version}`;
  return out;
}

/** Whether a DICOM JSON instance is an SR the node wrote (a TID 1500 report by PancreasAI). */
export function isPancreasReport(ds: DicomJsonDataset): boolean {
  return str(ds, Tags.SOPClassUID) === COMPREHENSIVE_3D_SR && str(ds, "00080070") === "PancreasAI Node";
}

/**
 * Parse one SR instance.
 *
 * @throws ResultParseError when the document has no resectability assessment.
 */
export function parseMeasurementReport(
  ds: DicomJsonDataset,
  labels: LabelsDocument = LABELS,
): PancreasResult {
  const root = items(ds);
  const measurementContainers = root.filter((i) => sameCode(i.name, C.imagingMeasurements));
  const groups = measurementContainers
    .flatMap((container) => items(container.ds))
    .filter((i) => i.valueType === "CONTAINER" && sameCode(i.name, C.measurementGroup))
    .map((g) => items(g.ds));
  const tumorCode = labelByName("tumor", labels)?.property_type;
  const contactDeg: Partial<Record<string, number>> = {};
  const segments: Partial<Record<string, SegmentRef>> = {};
  let tumorVolumeMl: number | undefined;
  let tumorMaxDiameterMm: number | undefined;
  let assessment: Item[] | undefined;
  let bundle: PancreasResult["bundle"] | undefined;
  let nodeAssessment: Omit<LymphNodeAssessment, "nodes"> | undefined;
  const nodes: LymphNode[] = [];
  let nodeSegUid: string | undefined;
  let prognosis: SurvivalPrognosis | undefined;

  for (const group of groups) {
    const finding = findCode(group, C.finding);
    const segment = segmentOf(group);
    // Lymph nodes (result 1.6): the patient group and one group per node; never the staging's.
    const patientNodes = lymphNodeAssessmentOf(group);
    if (patientNodes !== undefined) {
      nodeAssessment = patientNodes;
      continue;
    }
    // Survival prognosis (result 1.7): one patient-level group; never the staging's.
    if (sameCode(finding, C.survivalPrognosis)) {
      prognosis = prognosisOf(group) ?? prognosis;
      continue;
    }
    if (sameCode(finding, C.lymphNode)) {
      const node = lymphNodeOf(group);
      if (node !== undefined) nodes.push(node);
      nodeSegUid = nodeSegUid ?? segment?.segSopInstanceUid;
      continue;
    }
    if (bundle === undefined) {
      const name = texts(group, C.algorithmName)[0];
      const version = texts(group, C.algorithmVersion)[0];
      const sha = texts(group, C.algorithmParameters)
        .map((p) => /^bundle_sha256=([0-9a-f]{64})$/.exec(p)?.[1])
        .find((v) => v !== undefined);
      if (name !== undefined && version !== undefined) {
        bundle = sha === undefined ? { name, version } : { name, version, sha256: sha };
      }
    }
    if (findCode(group, C.networkCategory) !== undefined || findCode(group, C.tumorSegmented) !== undefined) {
      assessment = group;
      continue;
    }
    const angle = findNum(group, C.angle);
    const vessel = finding === undefined ? undefined : vesselForCode(finding, labels);
    if (angle !== undefined && vessel !== undefined) {
      contactDeg[vessel] = angle;
      if (segment !== undefined) segments[vessel] = segment;
      continue;
    }
    if (tumorCode !== undefined && sameCode(finding, tumorCode)) {
      tumorVolumeMl = findNum(group, C.volume) ?? tumorVolumeMl;
      tumorMaxDiameterMm = findNum(group, C.diameter) ?? tumorMaxDiameterMm;
      if (segment !== undefined) segments.tumor = segment;
    }
  }
  if (assessment === undefined) {
    throw new ResultParseError("the SR has no resectability assessment (NCCN-CAT)");
  }
  // Tumor segmented: Absent (result.json outcome no-tumor): no category, no probabilities.
  // Staging NOPDAC-STAGE (result.json outcome no-pdac): the detector gated the staging.
  const noPdac = sameCode(findCode(assessment, C.staging), C.noPdacStaging);
  const noTumor = !noPdac && sameCode(findCode(assessment, C.tumorSegmented), C.absent);
  // Staging OOD-STAGE (result.json outcome out-of-domain): the category is withheld.
  const withheld =
    noPdac || (!noTumor && sameCode(findCode(assessment, C.staging), C.outOfDomainStaging));
  const label = category(findCode(assessment, C.networkCategory));
  if (label === undefined && !noTumor && !withheld) throw new ResultParseError("unknown NCCN category code");
  const probabilities = C.probabilities.map((c) => findNum(assessment, c) ?? 0) as [
    number,
    number,
    number,
  ];
  const ruleCategory = noTumor || withheld ? undefined : category(findCode(assessment, C.ruleCategory));
  const disagreement = sameCode(findCode(assessment, C.disagreement), C.yes);
  const qualitative = root
    .filter((i) => sameCode(i.name, C.qualitative))
    .flatMap((container) => items(container.ds));
  const uncertainty = findNum(assessment, C.uncertainty);
  const localisationConfidence = findNum(assessment, C.localisation);
  const registryStatus = texts(qualitative, C.registry)[0];
  const analysedSeries = texts(qualitative, C.analysedSeries)[0];
  const detectionText = texts(qualitative, C.detection)[0];
  const result: PancreasResult = {
    source: "sr",
    bundle: bundle ?? { name: "unknown", version: "unknown" },
    outcome: noPdac ? "no-pdac" : noTumor ? "no-tumor" : withheld ? "out-of-domain" : "done",
    disagreement: noTumor || withheld ? false : disagreement,
    measurements: { contactDeg },
    clinical: {
      used: texts(qualitative, C.used),
      missing: texts(qualitative, C.missing),
      imputed: texts(qualitative, C.imputed),
      knockedOut: sameCode(findCode(qualitative, C.knockedOut), C.yes),
    },
    warnings: texts(qualitative, C.warning),
    notice: texts(qualitative, C.notice)[0] ?? labels.notice,
    segments,
  };
  const studyUid = str(ds, Tags.StudyInstanceUID);
  if (studyUid !== undefined) result.studyUid = studyUid;
  const grade = DOMAIN_BY_CODE[findCode(assessment, C.domain)?.value ?? ""];
  if (grade !== undefined) result.domain = { grade, reasons: texts(assessment, C.domainReason) };
  if (!noTumor && !withheld && label !== undefined) {
    // The SR leaves the uncertainty out for a one-model bundle: shown "not available", never 0.
    result.category = uncertainty === undefined ? { label, probabilities } : { label, probabilities, uncertainty };
  }
  if (ruleCategory !== undefined) result.ruleCategory = ruleCategory;
  if (tumorVolumeMl !== undefined) result.measurements.tumorVolumeMl = tumorVolumeMl;
  if (tumorMaxDiameterMm !== undefined) result.measurements.tumorMaxDiameterMm = tumorMaxDiameterMm;
  if (registryStatus !== undefined) result.clinical.registryStatus = registryStatus;
  if (analysedSeries !== undefined) result.analysedSeries = analysedSeries;
  if (detectionText !== undefined) result.detectionText = detectionText;
  if (localisationConfidence !== undefined) result.localisationConfidence = localisationConfidence;
  if (nodeAssessment !== undefined) {
    result.lymphNodes = nodeSegUid === undefined ? { ...nodeAssessment, nodes } : { ...nodeAssessment, nodes, segSopInstanceUid: nodeSegUid };
  }
  if (prognosis !== undefined) result.prognosis = prognosis;
  const seriesUid = groups
    .flatMap((group) => group.filter((i) => i.valueType === "UIDREF" && sameCode(i.name, C.sourceSeries)))
    .map((i) => str(i.ds, Tags.UID))
    .find((uid) => uid !== undefined);
  if (seriesUid !== undefined) result.seriesUid = seriesUid;
  return result;
}
