import type { AuditLog } from "../audit/audit-log.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import type { Clock } from "../domain/clock.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { SigningKeyStore } from "../store/signing-key-store.ts";
import { createSigningKey } from "./new-signing-key.ts";
import { nextGeneration, rotationDue } from "./signing-key-lifecycle.ts";
import type { SigningKeys } from "./signing-keys.ts";

/** Audit event types of the keys' lives; details carry the kid, never key material. */
export const signingKeyEvents = { created: "signing_key.created", retired: "signing_key.retired" } as const;

export interface SigningKeyRotationOptions {
  keys: SigningKeys;
  store: SigningKeyStore;
  keyRing: KeyRing;
  clock: Clock;
  audit: Pick<AuditLog, "record">;
  /** How long a new key is published before it signs, in ms. */
  publishLeadMs: number;
  /** A current key that has signed this long gets a successor, in ms; 0: only on command. */
  rotateEveryMs: number;
  /** How often the keys are read from PostgreSQL again, in ms. */
  refreshMs: number;
  /** Told of what changed, by kid only. */
  onChange: (kid: string, change: "created" | "signs" | "retired") => void;
  /** Told of a failed round other than PostgreSQL being down (it is tried again next round). */
  onError: (error: unknown) => void;
}

/**
 * Keeps this replica's signing keys current: every `refreshMs` it reads them again, creates the
 * next key when the schedule says so (one replica wins the race, see SigningKeyStore.insert), and
 * records the retirement of keys whose grants have all expired. Signing switches to a key by the
 * clock when its `signsFrom` passes, between rounds too (SigningKeys.signingKey). While PostgreSQL
 * is down a round changes nothing. Returns a stop function.
 */
export function startSigningKeyRotation(options: SigningKeyRotationOptions): () => void {
  const { keys, store, keyRing, clock, audit, onChange } = options;
  let signing = keys.lives().find((l) => l.state === "current")?.key.kid;
  const retiredHere = new Set(keys.lives().flatMap((l) => (l.state === "retired" ? [l.key.kid] : [])));

  const rotateIfDue = async () => {
    const now = clock();
    if (!rotationDue(keys.lives(), now, options.rotateEveryMs)) return;
    const at = {
      generation: nextGeneration(keys.lives().map((l) => l.key)),
      signsFrom: now + options.publishLeadMs,
      now,
    };
    const created = await createSigningKey({ store, keyRing }, at);
    if (created === undefined) return;
    onChange(created.kid, "created");
    await audit.record({
      type: signingKeyEvents.created,
      caller: "stepgate",
      details: { kid: created.kid, signs_from: new Date(created.signsFrom).toISOString(), by: "schedule" },
    });
    await keys.refresh();
  };

  // The one replica whose update lands records the retirement; it is the end it derived, not now.
  const recordRetirements = async () => {
    for (const life of keys.lives()) {
      if (life.state !== "retired" || life.key.retiredAt !== undefined || life.retiresAt === undefined)
        continue;
      if (!(await store.retire(life.key.kid, life.retiresAt))) continue;
      await audit.record({
        type: signingKeyEvents.retired,
        caller: "stepgate",
        details: { kid: life.key.kid, by: "schedule" },
      });
    }
  };

  const tellChanges = () => {
    for (const life of keys.lives()) {
      const { kid } = life.key;
      if (life.state === "current" && kid !== signing) {
        signing = kid;
        onChange(kid, "signs");
      }
      if (life.state === "retired" && !retiredHere.has(kid)) {
        retiredHere.add(kid);
        onChange(kid, "retired");
      }
    }
  };

  const round = async () => {
    try {
      if (await keys.refresh()) {
        await rotateIfDue();
        await recordRetirements();
      }
    } catch (error) {
      if (!(error instanceof DependencyUnavailableError)) options.onError(error);
    }
    tellChanges();
  };

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      void round().finally(() => {
        if (!stopped) schedule();
      });
    }, options.refreshMs);
    timer.unref();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
