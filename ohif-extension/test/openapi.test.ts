/**
 * The extension against the plugin's published API description (orthanc_plugin/openapi.json,
 * checked against the real plugin by tests/orthanc_plugin/test_board_api.py): every field the
 * extension reads is one the node documents, and what it sends is what the node accepts. A
 * renamed field on either side fails here before it fails in the browser.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

interface Schema {
  properties?: Record<string, Schema>;
  required?: string[];
  anyOf?: Schema[];
  enum?: string[];
  items?: Schema;
  $ref?: string;
}

const doc = JSON.parse(readFileSync(new URL("../../orthanc_plugin/openapi.json", import.meta.url), "utf8")) as {
  components: { schemas: Record<string, Schema> };
  paths: Record<string, Record<string, unknown>>;
};
const schemas = doc.components.schemas;

function object(schema: Schema | undefined): Schema {
  const found = schema?.anyOf?.find((s) => s.properties !== undefined) ?? schema;
  if (found?.properties === undefined) throw new Error("not an object schema");
  return found;
}

function props(name: string): string[] {
  return Object.keys(object(schemas[name]).properties ?? {});
}

describe("the plugin's OpenAPI description", () => {
  it("has every route the extension calls", () => {
    const routes: Array<[string, string]> = [
      ["/pancreas-ai/vocabulary", "get"],
      ["/pancreas-ai/boards", "get"],
      ["/pancreas-ai/boards", "post"],
      ["/pancreas-ai/boards/{id}", "get"],
      ["/pancreas-ai/boards/{id}/cases", "post"],
      ["/pancreas-ai/boards/{id}/cases/{study}", "delete"],
      ["/pancreas-ai/boards/{id}/cases/{study}/decision", "put"],
      ["/pancreas-ai/boards/{id}/decisions.csv", "get"],
      ["/pancreas-ai/boards/{id}/packet.pdf", "get"],
      ["/pancreas-ai/studies/{study}/reviews", "get"],
      ["/pancreas-ai/studies/{study}/reviews", "post"],
      ["/pancreas-ai/studies/{study}/corrections", "post"],
      ["/pancreas-ai/worklist", "get"],
    ];
    // Path parameters may be named otherwise in the document: compare the paths' shapes.
    const shape = (path: string): string => path.replace(/\{[^}]+\}/g, "{}");
    const documented = new Map<string, string[]>();
    for (const [path, methods] of Object.entries(doc.paths)) documented.set(shape(path), Object.keys(methods));
    for (const [path, method] of routes) expect(documented.get(shape(path)) ?? [], `${method} ${path}`).toContain(method);
  });

  it("documents the fields the extension reads", () => {
    expect(props("Review")).toEqual(expect.arrayContaining(["id", "verdict", "ai_category", "category", "reason", "reviewer", "created_at", "disagrees", "correction"]));
    expect(props("CorrectionState")).toEqual(expect.arrayContaining(["state", "corrected_seg_sop_instance_uid", "amendment_sr_sop_instance_uid", "error"]));
    expect(props("Board")).toEqual(expect.arrayContaining(["id", "board_date", "title", "members", "case_count", "decided_count", "packet"]));
    expect(props("Case")).toEqual(expect.arrayContaining(["board_id", "study_instance_uid", "position", "review", "decision"]));
    expect(props("Decision")).toEqual(expect.arrayContaining(["category", "category_text", "treatments", "treatment_texts", "text", "decided_by"]));
    expect(props("Vocabulary")).toEqual(expect.arrayContaining(["board_categories", "treatments"]));
    const item = object(schemas.WorklistItem).properties ?? {};
    expect(Object.keys(object(item.board).properties ?? {})).toEqual(expect.arrayContaining(["id", "date", "title"]));
    expect(Object.keys(object(item.review).properties ?? {})).toEqual(expect.arrayContaining(["verdict", "category", "reviewer"]));
    const decision = object(item.decision).properties ?? {};
    expect(decision.state?.enum).toEqual(["pending", "decided", "none"]);
    expect(Object.keys(item)).toEqual(expect.arrayContaining(["reason", "ai_status"]));
  });

  it("accepts exactly what the extension sends", () => {
    const sent: Record<string, string[]> = {
      Correction: ["reason", "category", "based_on_seg_sop_instance_uid", "referenced_series_instance_uid", "rows", "columns", "frames"],
      CorrectionFrame: ["sop_instance_uid", "rle"],
      ReviewInput: ["verdict", "category", "reason"],
      BoardInput: ["board_date", "title", "members", "auto_rule"],
      DecisionInput: ["category", "treatments", "text"],
      CaseInput: ["study_instance_uid"],
    };
    for (const [name, keys] of Object.entries(sent)) {
      const schema = object(schemas[name]);
      expect(Object.keys(schema.properties ?? {}).sort(), name).toEqual([...keys].sort());
      expect(keys, name).toEqual(expect.arrayContaining(schema.required ?? []));
    }
  });
});
