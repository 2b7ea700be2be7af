import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { withSettingsTable } from "./config-docs.ts";
import { settingsOf } from "./setting.ts";
import { configSchema, resealSchema } from "./settings.ts";

const doc = readFileSync(join(import.meta.dirname, "../../../../docs/configuration.md"), "utf8");

describe("docs/configuration.md", () => {
  it("holds the settings table settings.ts generates (run `pnpm docs:config` after changing a setting)", () => {
    assert.equal(doc, withSettingsTable(doc));
  });

  it("names every variable, each once, and every one has a description", () => {
    const settings = [...settingsOf(configSchema), ...settingsOf(resealSchema)];
    const variables = new Set(settings.map((s) => s.meta.env));
    for (const env of variables) {
      const rows = doc.split("\n").filter((line) => line.startsWith(`| \`${env}\` `));
      assert.equal(rows.length, 1, env);
    }
    for (const s of settings) assert.ok(s.meta.description.length > 10, s.meta.env);
  });
});
