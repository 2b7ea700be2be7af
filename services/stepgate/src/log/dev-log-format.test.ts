import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../config/config-error.ts";
import { createLineFormat, logFormatFor } from "./dev-log-format.ts";

// A replica's line as it writes it (log/logger.ts), and one of `pnpm dev`'s own.
const serving =
  '{"level":"info","time":"2026-03-01T09:15:02.123Z","service":"stepgate","replica":"dev-2",' +
  '"trace_id":"0af7651916cd43dd8448eb211c80319c","port":50052,"msg":"stepgate serving"}';
const devLine =
  '{"level":"warn","time":"2026-03-01T09:15:01.000Z","service":"stepgate","mode":"dev","msg":"no STEPGATE_ENCRYPTION_KEYS"}';

describe("logFormatFor", () => {
  it("is pretty on a terminal and JSON anywhere else", () => {
    assert.equal(logFormatFor(undefined, true), "pretty");
    assert.equal(logFormatFor(undefined, false), "json");
    assert.equal(logFormatFor("", false), "json", "an empty setting is no setting");
  });

  it("follows STEPGATE_LOG_FORMAT either way", () => {
    assert.equal(logFormatFor("json", true), "json");
    assert.equal(logFormatFor("pretty", false), "pretty");
  });

  it("refuses any other setting with a ConfigError naming the variable", () => {
    for (const bad of ["JSON", "text", " pretty", "x".repeat(10_000)]) {
      assert.throws(
        () => logFormatFor(bad, true),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.equal(e.message, "STEPGATE_LOG_FORMAT must be json or pretty");
          return true;
        },
      );
    }
  });
});

describe("createLineFormat", () => {
  it("json: every line as it came, one newline each", async () => {
    const format = await createLineFormat("json", { colorize: true });
    assert.equal(format(serving), `${serving}\n`);
    assert.equal(format(`${devLine}\n`), `${devLine}\n`, "pino's own newline is not doubled");
    assert.equal(format(""), "\n");
  });

  it("pretty: one readable line per entry, with the replica, level, message and the other fields", async () => {
    const format = await createLineFormat("pretty", { colorize: false });
    const line = format(serving);
    assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: dev-2 stepgate serving /);
    assert.match(line, /"port":50052/);
    assert.match(line, /"trace_id":"0af7651916cd43dd8448eb211c80319c"/);
    assert.doesNotMatch(line, /"service"|"level"|"replica"/);
    assert.ok(line.endsWith("}\n") && line.split("\n").length === 2, JSON.stringify(line));
    assert.match(format(`${devLine}\n`), /^\[[\d:.]+\] WARN: no STEPGATE_ENCRYPTION_KEYS\n$/);
    // The replica's line reaches dev.ts unformatted, so the banner's detection still sees "stepgate serving".
    assert.ok(serving.includes('"stepgate serving"'));
  });

  it("pretty: colours only when asked", async () => {
    const esc = String.fromCharCode(27);
    assert.ok((await createLineFormat("pretty", { colorize: true }))(serving).includes(`${esc}[`));
    assert.ok(!(await createLineFormat("pretty", { colorize: false }))(serving).includes(esc));
  });

  it("pretty: what is not a JSON entry passes through as it is", async () => {
    const format = await createLineFormat("pretty", { colorize: false });
    for (const text of [
      "Stepgate: 3 replicas on 127.0.0.1:50051",
      "",
      "  (the README walks through the whole flow)",
    ])
      assert.equal(format(text), `${text}\n`);
    assert.equal(format("{not json"), "{not json\n");
  });
});
