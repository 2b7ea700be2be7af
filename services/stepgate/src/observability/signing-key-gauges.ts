import type { Meter } from "@opentelemetry/api";

/** What the signing-key gauges read, in seconds. */
export interface SigningKeyGauges {
  /** How long the key that signs now has signed; undefined while no key signs. */
  ageSeconds: number | undefined;
  /** The age by which the schedule has the next key signing (rotation period plus publish lead); 0: rotation only on command. */
  maxAgeSeconds: number;
}

/**
 * Publishes `stepgate.signing_key.age` and `stepgate.signing_key.max_age` (both s), read from
 * `read` at each collection: an age past the max age means the rotation is overdue (no replica
 * created or opened the next key). Nothing is observed for the age while no key signs.
 */
export function observeSigningKeys(meter: Meter, read: () => SigningKeyGauges): void {
  const age = meter.createObservableGauge("stepgate.signing_key.age", {
    description: "How long the grant-signing key in use has signed",
    unit: "s",
  });
  const maxAge = meter.createObservableGauge("stepgate.signing_key.max_age", {
    description: "The age by which the next signing key should sign (0: rotation only on command)",
    unit: "s",
  });
  meter.addBatchObservableCallback(
    (result) => {
      const now = read();
      if (now.ageSeconds !== undefined) result.observe(age, now.ageSeconds);
      result.observe(maxAge, now.maxAgeSeconds);
    },
    [age, maxAge],
  );
}
