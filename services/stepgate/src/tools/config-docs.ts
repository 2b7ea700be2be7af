// `pnpm docs:config`: writes the settings table of docs/configuration.md from config/settings.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { withSettingsTable } from "../config/config-docs.ts";

const file = join(import.meta.dirname, "../../../../docs/configuration.md");
writeFileSync(file, withSettingsTable(readFileSync(file, "utf8")));
process.stdout.write("docs/configuration.md: settings table written\n");
