/**
 * The panel's "Prognosis" section (result 1.7, issue 25): the risk group as a badge, the death
 * probability by 1, 2 and 3 years (bars; the risk horizon's marked with the cut-off), the
 * component models' probabilities, the TNM inputs with their source, the inputs the model
 * lacked, its warnings and version, and that it is investigational. Hook-free: rendered inside
 * PanelContent's root.
 */
import {
  componentText,
  horizonRows,
  PROGNOSIS_NOTICE,
  prognosisText,
  riskBadgeText,
  stageText,
  type SurvivalPrognosis,
} from "../prognosis";

export function PrognosisSection({ prognosis }: { prognosis: SurvivalPrognosis }): JSX.Element {
  const rows = horizonRows(prognosis);
  return (
    <section data-testid="pancreas-ai-prognosis" data-risk={prognosis.riskGroup}>
      <h3>Prognosis</h3>
      <div className="pai-kv">
        <span>Risk group</span>
        <span>
          <span className={`pai-risk pai-risk-${prognosis.riskGroup}`} data-testid="pancreas-ai-risk-group" data-risk={prognosis.riskGroup}>
            {riskBadgeText(prognosis.riskGroup)}
          </span>{" "}
          <span className="pai-muted">
            cut-off {prognosis.riskCutoff.toFixed(2)} at {prognosis.riskHorizonYears} year{prognosis.riskHorizonYears !== 1 ? "s" : ""}
          </span>
        </span>
      </div>
      <div className="pai-bars" data-testid="pancreas-ai-death-probability">
        {rows.map((row) => (
          <div className="pai-bar-row" key={row.years} data-testid={`pancreas-ai-death-${row.years}y`} data-value={prognosis.deathProbability[row.years - 1]}>
            <span className="pai-bar-label">death {row.label}</span>
            <span className="pai-bar-track">
              <span className={row.isRiskHorizon ? "pai-bar pai-bar-max" : "pai-bar"} style={{ width: `${row.percent}%` }} />
            </span>
            <span className="pai-bar-value">{row.text}</span>
          </div>
        ))}
      </div>
      <p className="pai-muted" data-testid="pancreas-ai-prognosis-text">{prognosisText(prognosis)}</p>
      <div className="pai-kv">
        <span>Components</span>
        <span data-testid="pancreas-ai-prognosis-components">
          {prognosis.components.length === 0 ? "—" : prognosis.components.map(componentText).join(" · ")}
        </span>
        <span>TNM inputs</span>
        <span data-testid="pancreas-ai-prognosis-tnm">
          {prognosis.staging.length === 0 ? "—" : prognosis.staging.map(stageText).join(", ")}
        </span>
        <span>Inputs missing</span>
        <span data-testid="pancreas-ai-prognosis-missing">{prognosis.inputsMissing.join(", ") || "—"}</span>
        <span>Model</span>
        <span data-testid="pancreas-ai-prognosis-model">{prognosis.modelVersion ?? "—"}</span>
      </div>
      {prognosis.warnings.map((w) => (
        <p className="pai-muted" key={w} data-testid="pancreas-ai-prognosis-warning">{w}</p>
      ))}
      <p className="pai-notice" data-testid="pancreas-ai-prognosis-notice">{PROGNOSIS_NOTICE}</p>
    </section>
  );
}
