/**
 * The Orthanc plugin's routes (orthanc_plugin/_routes.py): `GET /pancreas-ai/studies/{uid}/results`
 * and `GET /pancreas-ai/worklist`. Optional: the panel works from the SR alone.
 */
import type { CategoryLabel } from "./labels";
import { LABELS } from "./labels";
import { parseLymphNodes } from "./lymphNodes";
import { parsePrognosis } from "./prognosis";
import type { PancreasResult } from "./result";

type Json = unknown;

function obj(value: Json): Record<string, Json> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, Json>)
    : undefined;
}

function numberOr(value: Json): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function strings(value: Json): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** "locally-advanced", "nccn-borderline", "Locally advanced" -> a category label. */
export function normaliseCategory(value: Json): CategoryLabel | undefined {
  if (typeof value !== "string") return undefined;
  const text = value.toLowerCase().replace(/^nccn-/, "").replace(/-/g, " ").trim();
  return (LABELS.categories as string[]).includes(text) ? (text as CategoryLabel) : undefined;
}

/** The `result` of the results route as a PancreasResult, or undefined when there is none. */
export function fromPluginResults(body: Json): PancreasResult | undefined {
  const root = obj(body);
  const result = obj(root?.result);
  if (result === undefined) return undefined;
  const category = obj(result.category);
  const label = normaliseCategory(category?.label);
  // outcome no-tumor (result.json 1.2): no tumor segmented, no category to show.
  const noTumor = result.outcome === "no-tumor";
  // outcome out-of-domain (result.json 1.3): the category is withheld, none to show.
  // outcome no-pdac (result.json 1.5): the detector found no PDAC, no category is given.
  const noPdac = result.outcome === "no-pdac";
  const withheld = result.outcome === "out-of-domain" || noPdac;
  if (label === undefined && !noTumor && !withheld) return undefined;
  const probs = obj(category?.probabilities);
  const probabilities = LABELS.categories.map((c) => numberOr(probs?.[c]) ?? 0) as [
    number,
    number,
    number,
  ];
  const measurements = obj(result.measurements);
  const contact = obj(measurements?.contact_deg) ?? {};
  const contactDeg: Partial<Record<string, number>> = {};
  for (const [vessel, angle] of Object.entries(contact)) {
    const value = numberOr(angle);
    if (value !== undefined) contactDeg[vessel] = value;
  }
  const clinical = obj(obj(result.inputs)?.clinical);
  const model = obj(result.model);
  const out: PancreasResult = {
    source: "plugin",
    bundle: {
      name: typeof model?.name === "string" ? model.name : "unknown",
      version: typeof model?.version === "string" ? model.version : "unknown",
    },
    outcome: noPdac ? "no-pdac" : noTumor ? "no-tumor" : withheld ? "out-of-domain" : "done",
    disagreement: !noTumor && !withheld && result.disagreement === true,
    measurements: { contactDeg },
    clinical: {
      used: strings(clinical?.used),
      missing: strings(clinical?.missing),
      imputed: strings(clinical?.imputed),
      knockedOut: clinical?.knocked_out === true,
    },
    warnings: strings(result.warnings),
    notice: typeof result.notice === "string" ? result.notice : LABELS.notice,
    segments: {},
  };
  if (typeof model?.sha256 === "string") out.bundle.sha256 = model.sha256;
  if (!noTumor && !withheld && label !== undefined) {
    out.category = { label, probabilities };
    const ensembleSize = numberOr(category?.ensemble_size);
    if (ensembleSize !== undefined) out.category.ensembleSize = ensembleSize;
    const uncertainty = numberOr(category?.uncertainty);
    // One model has no spread: its uncertainty (0) is not shown.
    if (uncertainty !== undefined && ensembleSize !== 1) out.category.uncertainty = uncertainty;
    const rule = normaliseCategory(result.rule_category);
    if (rule !== undefined) out.ruleCategory = rule;
  }
  const volume = numberOr(measurements?.tumor_volume_ml);
  if (volume !== undefined) out.measurements.tumorVolumeMl = volume;
  const diameter = numberOr(measurements?.tumor_max_diameter_mm);
  if (diameter !== undefined) out.measurements.tumorMaxDiameterMm = diameter;
  if (typeof clinical?.registry_status === "string") out.clinical.registryStatus = clinical.registry_status;
  const confidence = numberOr(obj(result.localisation)?.confidence);
  if (confidence !== undefined) out.localisationConfidence = confidence;
  if (typeof root?.study_instance_uid === "string") out.studyUid = root.study_instance_uid;
  if (typeof result.series_instance_uid === "string") out.seriesUid = result.series_instance_uid;
  // result.json 1.6: the lymph-node model's answer, with the node SEG it wrote (if any).
  const nodeSeg = obj(obj(result.outputs)?.lymph_node_seg)?.sop_instance_uid;
  const lymphNodes = parseLymphNodes(result.lymph_nodes, typeof nodeSeg === "string" ? nodeSeg : undefined);
  if (lymphNodes !== undefined) out.lymphNodes = lymphNodes;
  // result.json 1.7: the survival model's prognosis.
  const prognosis = parsePrognosis(result.prognosis);
  if (prognosis !== undefined) out.prognosis = prognosis;
  return out;
}

/** Plugin values win (they are the node's record); the SR adds the segment references. */
export function mergeResults(
  plugin: PancreasResult | undefined,
  sr: PancreasResult | undefined,
): PancreasResult | undefined {
  if (plugin === undefined) return sr;
  if (sr === undefined) return plugin;
  const merged: PancreasResult = { ...plugin, source: "plugin+sr", segments: { ...sr.segments, ...plugin.segments } };
  const analysedSeries = plugin.analysedSeries ?? sr.analysedSeries;
  if (analysedSeries !== undefined) merged.analysedSeries = analysedSeries;
  const detectionText = plugin.detectionText ?? sr.detectionText;
  if (detectionText !== undefined) merged.detectionText = detectionText;
  const lymphNodes = plugin.lymphNodes ?? sr.lymphNodes;
  if (lymphNodes !== undefined) merged.lymphNodes = lymphNodes;
  const prognosis = plugin.prognosis ?? sr.prognosis;
  if (prognosis !== undefined) merged.prognosis = prognosis;
  return merged;
}
