/**
 * The survival model's prognosis (result 1.7, issue 25): the probability of death within 1, 2
 * and 3 years, the risk group (high when the fusion probability at the risk horizon reaches the
 * cut-off, 0.8 at 3 years), the component models' probabilities, the TNM inputs with their
 * source and the inputs the model lacked (`result.json` `prognosis`,
 * `pancreas_contracts.prognosis.SurvivalPrognosis`), read from the plugin's results route (its
 * `prognosis` section, `orthanc_plugin/_prognosis.py`) or the SR's prognosis group
 * (`inference/_sr_survival.py`, read in sr.ts). Pure logic, unit-tested. Investigational, not
 * for clinical use.
 */

export type RiskGroup = "high" | "low";
export type TnmKey = "T" | "N" | "M";
/** Where a TNM input came from (pancreas_contracts.prognosis.TnmSource). */
export type TnmSource = "node" | "lymph-node-model" | "registry" | "missing";

/** Death by 1, 2 and 3 years (non-decreasing). */
export type Horizons = [number, number, number];

export interface StageInput {
  key: TnmKey;
  /** `T1`..`T4`, `N0`/`N+`, `M0`/`M1`; undefined when missing. */
  value?: string;
  source: TnmSource;
}

export interface ComponentModel {
  /** `radiomics`, `densenet`, `clinical`. */
  name: string;
  deathProbability: Horizons;
}

export interface KaplanMeierCurve {
  label: string;
  months: number[];
  survival: number[];
}

export interface SurvivalPrognosis {
  modelVersion?: string;
  deathProbability: Horizons;
  riskGroup: RiskGroup;
  riskHorizonYears: 1 | 2 | 3;
  riskCutoff: number;
  components: ComponentModel[];
  /** T, N, M in that order, those the result lists. */
  staging: StageInput[];
  /** The bundle's training groups (plugin route only; the SR does not carry them). */
  referenceCurves: KaplanMeierCurve[];
  inputsUsed: string[];
  inputsMissing: string[];
  warnings: string[];
}

/** What the panel says under every prognosis (pancreas_contracts: investigational). */
export const PROGNOSIS_NOTICE = "Investigational, not for clinical use";

const TNM_KEYS: readonly TnmKey[] = ["T", "N", "M"];
const SOURCES: readonly string[] = ["node", "lymph-node-model", "registry", "missing"];
const STAGE_VALUE = /^(T[1-4]|N0|N\+|M[01])$/;

type Json = unknown;

function obj(value: Json): Record<string, Json> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, Json>)
    : undefined;
}

function probability(value: Json): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 1 ? value : undefined;
}

function strings(value: Json): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

export function isRiskGroup(value: Json): value is RiskGroup {
  return value === "high" || value === "low";
}

/** Three probabilities by 1, 2, 3 years, non-decreasing; undefined otherwise. */
export function horizons(value: Json): Horizons | undefined {
  if (!Array.isArray(value) || value.length !== 3) return undefined;
  const [a, b, c] = value.map(probability);
  if (a === undefined || b === undefined || c === undefined || a > b || b > c) return undefined;
  return [a, b, c];
}

/** A TNM input from its parts; undefined for an unknown source or a value that breaks the contract. */
export function stageInput(key: TnmKey, value: Json, source: Json): StageInput | undefined {
  if (typeof source !== "string" || !SOURCES.includes(source)) return undefined;
  if (source === "missing") return value === null || value === undefined ? { key, source: "missing" } : undefined;
  return typeof value === "string" && STAGE_VALUE.test(value) ? { key, value, source: source as TnmSource } : undefined;
}

function curve(value: Json): KaplanMeierCurve | undefined {
  const c = obj(value);
  const months = Array.isArray(c?.months) ? c.months.filter((m): m is number => typeof m === "number") : [];
  const survival = Array.isArray(c?.survival) ? c.survival.filter((s): s is number => typeof s === "number") : [];
  if (typeof c?.label !== "string" || months.length === 0 || months.length !== survival.length) return undefined;
  return { label: c.label, months, survival };
}

/**
 * The results route's `prognosis` section (or `result.json`'s, same fields) as a prognosis;
 * undefined for `null` (no survival model) or a section without probabilities or risk group.
 */
export function parsePrognosis(section: Json): SurvivalPrognosis | undefined {
  const root = obj(section);
  const death = horizons(root?.death_probability);
  const cutoff = probability(root?.risk_cutoff);
  if (root === undefined || death === undefined || cutoff === undefined || !isRiskGroup(root.risk_group)) return undefined;
  const horizon = root.risk_horizon_years === 1 || root.risk_horizon_years === 2 ? root.risk_horizon_years : 3;
  const components = Object.entries(obj(root.components) ?? {}).flatMap(([name, model]) => {
    const p = horizons(obj(model)?.death_probability);
    return p === undefined ? [] : [{ name, deathProbability: p }];
  });
  const staging = obj(root.staging) ?? {};
  const out: SurvivalPrognosis = {
    deathProbability: death,
    riskGroup: root.risk_group,
    riskHorizonYears: horizon,
    riskCutoff: cutoff,
    components,
    staging: TNM_KEYS.flatMap((key) => {
      const s = obj(staging[key]);
      const input = s === undefined ? undefined : stageInput(key, s.value, s.source);
      return input === undefined ? [] : [input];
    }),
    referenceCurves: (Array.isArray(root.reference_curves) ? root.reference_curves : [])
      .map(curve)
      .filter((c): c is KaplanMeierCurve => c !== undefined),
    inputsUsed: strings(root.inputs_used),
    inputsMissing: strings(root.inputs_missing),
    warnings: strings(root.warnings),
  };
  if (typeof root.model_version === "string" && root.model_version !== "") out.modelVersion = root.model_version;
  return out;
}

/**
 * The prognosis in one line, as `SurvivalPrognosis.describe()` writes it (the SR, the PDF and
 * the plugin's `text`): `high risk (death by 1/2/3 years 0.42/0.71/0.86; cut-off 0.80 at 3 years)`.
 */
export function prognosisText(p: SurvivalPrognosis | undefined): string {
  if (p === undefined) return "—";
  const probabilities = p.deathProbability.map((v) => v.toFixed(2)).join("/");
  const years = `${p.riskHorizonYears} year${p.riskHorizonYears !== 1 ? "s" : ""}`;
  return `${p.riskGroup} risk (death by 1/2/3 years ${probabilities}; cut-off ${p.riskCutoff.toFixed(2)} at ${years})`;
}

/** The risk badge: `High risk` / `Low risk`. */
export function riskBadgeText(group: RiskGroup): string {
  return group === "high" ? "High risk" : "Low risk";
}

export interface HorizonRow {
  years: 1 | 2 | 3;
  label: string;
  /** Percent, one decimal (for the bar). */
  percent: number;
  text: string;
  /** Whether the risk group is decided at this horizon. */
  isRiskHorizon: boolean;
}

/** The panel's death-probability rows, by 1, 2 and 3 years. */
export function horizonRows(p: SurvivalPrognosis): HorizonRow[] {
  return p.deathProbability.map((value, i) => {
    const years = (i + 1) as 1 | 2 | 3;
    return {
      years,
      label: `by ${years} year${years !== 1 ? "s" : ""}`,
      percent: Math.round(value * 1000) / 10,
      text: value.toFixed(2),
      isRiskHorizon: years === p.riskHorizonYears,
    };
  });
}

/** One component model's line: `radiomics 0.40/0.66/0.81`. */
export function componentText(model: ComponentModel): string {
  return `${model.name} ${model.deathProbability.map((v) => v.toFixed(2)).join("/")}`;
}

const SOURCE_TEXT: Record<TnmSource, string> = {
  node: "node",
  "lymph-node-model": "lymph-node model",
  registry: "registry",
  missing: "missing",
};

/** One TNM input as the panel shows it: `T3 (node)`, `N+ (lymph-node model)`, `M missing`. */
export function stageText(input: StageInput): string {
  return input.value === undefined ? `${input.key} missing` : `${input.value} (${SOURCE_TEXT[input.source]})`;
}

// --- worklist ------------------------------------------------------------------------------

/** The worklist's risk cell: `high 0.86`, `low 0.35` (death by 3 years), or "—" without a prognosis. */
export function riskCellText(group: RiskGroup | undefined, deathProbability3y: number | undefined): string {
  if (group === undefined) return "—";
  return deathProbability3y === undefined ? group : `${group} ${deathProbability3y.toFixed(2)}`;
}
