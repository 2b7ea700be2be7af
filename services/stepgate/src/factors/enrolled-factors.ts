import type { KeyRing } from "../crypto/key-ring.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { Enrolled } from "../domain/factor.ts";
import type { MethodName } from "../domain/method.ts";
import type { FactorCache } from "../store/factor-cache.ts";
import type { FactorStore } from "../store/factor-store.ts";

/** What a subject can answer challenges with, from PostgreSQL or, while it is down, from the cache. */
export interface EnrolledFactors {
  /**
   * Reads PostgreSQL and refreshes the cache; while PostgreSQL is unavailable, answers from the
   * cache. Fails with the DependencyUnavailableError when PostgreSQL is down and nothing is cached.
   */
  read(subject: string): Promise<Enrolled>;
  /** Puts the subject's current factors in the cache after a change (best effort: a failure is ignored). */
  refresh(subject: string): Promise<void>;
}

export interface EnrolledFactorsDeps {
  factors: Pick<FactorStore, "enrolled">;
  cache: FactorCache;
  /** Seals cache entries (AES-256-GCM), bound to the subject. */
  keyRing: KeyRing;
  /** How long a cached copy may answer for PostgreSQL, in ms. */
  cacheTtlMs: number;
}

interface Stored {
  methods: MethodName[];
  totp: Enrolled["totp"];
  /** Absent in entries cached before passkeys. */
  passkeys?: Enrolled["passkeys"];
  version: number;
}

const binding = (subject: string) => `factor-cache:${subject}`;

export function createEnrolledFactors(deps: EnrolledFactorsDeps): EnrolledFactors {
  const put = async (subject: string, enrolled: Enrolled) => {
    const stored: Stored = {
      methods: [...enrolled.methods],
      totp: enrolled.totp,
      passkeys: enrolled.passkeys,
      version: enrolled.version,
    };
    const sealed = deps.keyRing
      .seal(Buffer.from(JSON.stringify(stored)), binding(subject))
      .toString("base64");
    await deps.cache.put(subject, enrolled.version, sealed, deps.cacheTtlMs);
  };
  const fromCache = async (subject: string): Promise<Enrolled | undefined> => {
    const cached = await deps.cache.get(subject);
    if (!cached) return undefined;
    const opened = deps.keyRing.open(Buffer.from(cached.sealed, "base64"), binding(subject));
    const stored = JSON.parse(opened.toString("utf8")) as Stored;
    // The version outside the seal could be altered; the one inside cannot.
    if (stored.version !== cached.version) return undefined;
    return {
      methods: new Set(stored.methods),
      totp: stored.totp,
      passkeys: stored.passkeys ?? [],
      version: stored.version,
    };
  };
  return {
    async read(subject) {
      try {
        const enrolled = await deps.factors.enrolled(subject);
        // Not awaited: the write rides the caller's next Redis round trip (auto-pipelining).
        void put(subject, enrolled).catch(() => {});
        return enrolled;
      } catch (error) {
        if (!(error instanceof DependencyUnavailableError)) throw error;
        const cached = await fromCache(subject).catch(() => undefined);
        if (cached === undefined) throw error;
        return cached;
      }
    },
    async refresh(subject) {
      await deps.factors
        .enrolled(subject)
        .then((enrolled) => put(subject, enrolled))
        .catch(() => {});
    },
  };
}
