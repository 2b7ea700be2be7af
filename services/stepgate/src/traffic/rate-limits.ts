import { StepgateError } from "../domain/stepgate-error.ts";
import type { Rate, RateLimitPolicy } from "../policy/policy.ts";
import type { Counted, RateCounter, RateLimitStore } from "../store/rate-limit-store.ts";

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
 * (its own quota, or the default), and per subject for StepUp and Verify. The client's limits
 * (address, calling service) count the call at once (one pipelined Redis round trip); the subject's
 * counts it only once they let it through (a second round trip), so a caller's flood does not
 * spend a subject's allowance, even all at once. When one refuses, the counts already taken are
 * given back. Fails with RATE_LIMITED (metadata `limit`, and the ms until the limit lets calls
 * through as retryAfterMs).
 */
export type CheckRateLimits = (call: RateLimitedCall) => Promise<void> | undefined;

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
  /**
   * Counts the call under every one of `checks` at once. When one refuses, gives back what the
   * others counted and what `counted` (limits that let the call through before) did, and fails.
   */
  const countAll = (checks: [RateCounter, string][], counted: [RateCounter, string][] = []) => {
    // Most calls are decided from leased tokens in memory: no promise for them.
    const now = checks.map(([rate, key]) => store.countNow(rate, key));
    if (now.every((c) => c?.allowed === true)) return undefined;
    return settleAll(
      checks,
      counted,
      now.map((c, i) => c ?? store.count(...(checks[i] as [RateCounter, string]))),
    );
  };
  const settleAll = async (
    checks: [RateCounter, string][],
    counted: [RateCounter, string][],
    pending: (Counted | Promise<Counted>)[],
  ) => {
    const verdicts = await Promise.all(pending);
    const refused = verdicts.findIndex((c) => !c.allowed);
    if (refused < 0) return;
    await Promise.all([
      ...checks.map(([rate, key], i) => (verdicts[i]?.allowed ? store.giveBack(rate, key) : undefined)),
      ...counted.map(([rate, key]) => store.giveBack(rate, key)),
    ]);
    const [rate] = checks[refused] as [RateCounter, string];
    const verdict = verdicts[refused];
    throw new StepgateError("RATE_LIMITED", `too many calls for this ${rate.name}`, {
      metadata: { limit: rate.name },
      retryAfterMs: verdict && !verdict.allowed ? verdict.retryAfterMs : rate.perSeconds * 1000,
    });
  };
  return (call) => {
    const client: [RateCounter, string][] = [];
    if (source) client.push([source, call.source]);
    const quota = quotas.get(call.caller) ?? defaultCaller;
    if (quota) client.push([quota, call.caller]);
    // Only after the client's: counted at once with them, a flood its caller may not send would
    // spend the subject's allowance anyway, since a count a limit refused is never given back (and a
    // spent key is refused from memory until its window ends).
    const ofSubject = () =>
      subject && call.subject !== undefined ? countAll([[subject, call.subject]], client) : undefined;
    const pending = countAll(client);
    return pending === undefined ? ofSubject() : pending.then(ofSubject);
  };
}
