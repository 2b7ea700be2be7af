import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it, mock } from "node:test";
import { rateLimitedLines } from "./rate-limited-lines.ts";

describe("rateLimitedLines", () => {
  beforeEach(() => mock.timers.enable({ apis: ["setTimeout"] }));
  afterEach(() => mock.timers.reset());

  it("writes the first occurrence per key, then one count per interval, and starts afresh after a quiet one", () => {
    const lines: unknown[] = [];
    const occurred = rateLimitedLines<string, number>(1000, (line) => lines.push(line));
    occurred("expired", 1);
    occurred("expired", 2);
    occurred("plaintext", 3);
    occurred("expired", 4);
    assert.deepEqual(lines, [
      { key: "expired", first: 1 },
      { key: "plaintext", first: 3 },
    ]);
    mock.timers.tick(999);
    assert.equal(lines.length, 2);
    mock.timers.tick(1);
    assert.deepEqual(lines.slice(2), [{ key: "expired", suppressed: 2 }]);
    // The count line opened another interval: what occurs in it is counted, not written.
    occurred("expired", 5);
    mock.timers.tick(1000);
    assert.deepEqual(lines.slice(3), [{ key: "expired", suppressed: 1 }]);
    // Two quiet intervals: the next occurrence is written at once again.
    mock.timers.tick(2000);
    occurred("expired", 6);
    assert.deepEqual(lines.slice(4), [{ key: "expired", first: 6 }]);
  });
});
