import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { latestNumericDate, timeClaimFault } from "./time-claims.ts";

const now = 1_800_000_000;
const tolerance = 5;

/** Times as a token from outside may carry them: seconds near now, milliseconds, future, zero, negative, huge, junk. */
function arbitraryTime(nowSeconds: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.integer({ min: nowSeconds - 100_000, max: nowSeconds + 100_000 }),
    fc.integer({ min: (nowSeconds - 200_000) * 1000, max: (nowSeconds + 100) * 1000 }),
    fc.double({ min: -1e20, max: 1e20, noNaN: true }),
    fc.constantFrom(0, -1, -nowSeconds, latestNumericDate, latestNumericDate + 1, Number.MAX_SAFE_INTEGER),
    fc.constantFrom(null, true, "1800000000", [nowSeconds], { t: nowSeconds }),
    fc.constant(undefined),
  );
}

describe("time claims", () => {
  it("never reads a time as fresher than it is", () => {
    fc.assert(
      fc.property(
        arbitraryTime(now),
        arbitraryTime(now),
        fc.integer({ min: 0, max: 86_400 }),
        (authTime, iat, maxAge) => {
          const fault = timeClaimFault({ auth_time: authTime, iat }, now, tolerance);
          const fresh =
            fault === undefined && typeof authTime === "number" && now - authTime <= maxAge + tolerance;
          if (!fresh) return;
          // Accepted as fresh: a real time in seconds, within max_age and not in the future.
          assert.ok(Number.isFinite(authTime) && authTime >= now - maxAge - tolerance);
          assert.ok(authTime <= now + tolerance);
          if (typeof iat === "number") assert.ok(iat <= now + tolerance && authTime <= iat + tolerance);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("names the claim at fault", () => {
    assert.equal(
      timeClaimFault({ auth_time: (now - 2 * 86_400) * 1000 }, now, tolerance),
      "auth_time is not a time in seconds",
    );
    assert.equal(timeClaimFault({ auth_time: now * 100 }, now, tolerance), "auth_time is in the future");
    assert.equal(timeClaimFault({ auth_time: now + 3600 }, now, tolerance), "auth_time is in the future");
    assert.equal(timeClaimFault({ iat: now + 3600 }, now, tolerance), "iat is in the future");
    assert.equal(timeClaimFault({ exp: now * 1000 }, now, tolerance), "exp is not a time in seconds");
    assert.equal(timeClaimFault({ auth_time: -1 }, now, tolerance), "auth_time is not a time in seconds");
    assert.equal(timeClaimFault({ auth_time: "1" }, now, tolerance), "auth_time is not a time in seconds");
    assert.equal(
      timeClaimFault({ iat: now - 60, auth_time: now - 10 }, now, tolerance),
      "auth_time is after iat",
    );
    assert.equal(timeClaimFault({ iat: now, auth_time: now - 60, exp: now + 60 }, now, tolerance), undefined);
    assert.equal(timeClaimFault({ auth_time: now + tolerance }, now, tolerance), undefined);
    assert.equal(timeClaimFault({}, now, tolerance), undefined);
  });
});
