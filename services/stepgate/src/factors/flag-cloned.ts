import type { PasskeyCounters } from "../store/passkey-counters.ts";
import type { PasskeyStore } from "../store/passkey-store.ts";

/**
 * Flags a passkey whose signature counter did not grow (a cloned authenticator, WebAuthn 6.1.1):
 * the hot store refuses its every later counter at once, and PostgreSQL flags the credential, which
 * leaves the subject's factors. Each is best effort: while PostgreSQL is down the hot store's mark
 * refuses the passkey, and the audited `passkey.counter_regressed` event flags it once PostgreSQL
 * stores it (store/audit-store.ts). Never rejects.
 */
export type FlagCloned = (subject: string, factorId: string, now: Date) => Promise<void>;

export function createFlagCloned(deps: {
  passkeys: Pick<PasskeyStore, "flagCloned">;
  passkeyCounters: Pick<PasskeyCounters, "retire">;
}): FlagCloned {
  return async (subject, factorId, now) => {
    await Promise.allSettled([
      deps.passkeyCounters.retire(factorId),
      deps.passkeys.flagCloned(subject, factorId, now),
    ]);
  };
}
