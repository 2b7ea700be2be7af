import { StepgateError } from "../domain/stepgate-error.ts";
import type { Rate, RateLimitPolicy } from "../policy/policy.ts";
import type { RateCounter, RateLimitStore } from "../store/rate-limit-store.ts";

/** Who a call comes from and whom it is about, as the rate limits see it. */
export interface RateLimitedCall {
  /** The calling service (`stepgate-caller`). */
  caller: string;
  /** The client's address, without its port. */
  source: string;
  /** The subject, for StepUp and Verify only. */
  subject?: string;
}

/**
 * Fleet-wide rate limits from the policy's `rate_limits`: per client address, per calling service
 * (its own quota, or the default), and per subject for StepUp and Verify. Every limit that applies
 * counts the call at once (one pipelined Redis round trip); when one refuses, the others give
 * their count back, so a caller's flood does not spend a subject's allowance. Fails with
 * RATE_LIMITED (metadata `limit`, and the ms until the limit lets calls through as retryAfterMs).
 */
export type CheckRateLimits = (call: RateLimitedCall) => Promise<void>;

export interface RateLimitsDeps {
  limits: RateLimitPolicy;
  store: RateLimitStore;
}

const counter = (name: string, rate: Rate): RateCounter => ({
  name,
  calls: rate.calls,
  perSeconds: rate.perSeconds,
});

export function createRateLimits({ limits, store }: RateLimitsDeps): CheckRateLimits {
  const source = limits.source && counter("source", limits.source);
  const subject = limits.subject && counter("subject", limits.subject);
  const defaultCaller = limits.caller && counter("caller", limits.caller);
  const quotas = new Map([...limits.callers].map(([name, rate]) => [name, counter("caller", rate)]));
  return async (call) => {
    const checks: [RateCounter, string][] = [];
    if (source) checks.push([source, call.source]);
    const quota = quotas.get(call.caller) ?? defaultCaller;
    if (quota) checks.push([quota, call.caller]);
    if (subject && call.subject !== undefined) checks.push([subject, call.subject]);
    if (checks.length === 0) return;
    const counted = await Promise.all(checks.map(([rate, key]) => store.count(rate, key)));
    const refused = counted.findIndex((c) => !c.allowed);
    if (refused < 0) return;
    await Promise.all(
      checks.map(([rate, key], i) => (counted[i]?.allowed ? store.giveBack(rate, key) : undefined)),
    );
    const [rate] = checks[refused] as [RateCounter, string];
    const verdict = counted[refused];
    throw new StepgateError("RATE_LIMITED", `too many calls for this ${rate.name}`, {
      metadata: { limit: rate.name },
      retryAfterMs: verdict && !verdict.allowed ? verdict.retryAfterMs : rate.perSeconds * 1000,
    });
  };
}
