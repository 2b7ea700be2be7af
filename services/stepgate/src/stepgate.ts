import type { AuditLog } from "./audit/audit-log.ts";
import type { Config } from "./config/config.ts";
import type { Policy } from "./config/policy.ts";
import type { KeyRing } from "./crypto/key-ring.ts";
import type { Clock } from "./domain/clock.ts";
import type { FactorStore } from "./factors/factor-store.ts";
import type { GrantChecker } from "./grants/grant-check.ts";
import type { GrantIssuer } from "./grants/grant-issuer.ts";
import type { SigningKeys } from "./grants/signing-keys.ts";
import type { Attempts } from "./limits/attempts.ts";
import type { Metrics } from "./observability/metrics.ts";
import type { Challenges } from "./stepup/challenges.ts";
import type { Elevations } from "./stepup/elevations.ts";
import type { HotStore } from "./store/hot-store.ts";

/** Everything the domain functions need, wired once at start (see wiring.ts). */
export interface Stepgate {
  config: Config;
  policy: Policy;
  clock: Clock;
  keyRing: KeyRing;
  hot: HotStore;
  factors: FactorStore;
  challenges: Challenges;
  elevations: Elevations;
  attempts: Attempts;
  signingKeys: SigningKeys;
  issueGrant: GrantIssuer;
  grants: GrantChecker;
  audit: AuditLog;
  metrics: Metrics;
  /** A keyed hash for fingerprints that must not reveal what they were made from. */
  fingerprint(...parts: string[]): string;
}
