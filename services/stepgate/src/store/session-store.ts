import type { Elevation } from "../domain/elevation.ts";
import { type DurableMirror, noMirror } from "./durable-mirror.ts";
import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** Sessions' elevations and revocations. The only owner of revocation state. */
export interface SessionStore {
  /** The session's elevations at any of `acrs`. */
  findElevations(subject: string, sessionId: string, acrs: string[]): Promise<Elevation[]>;
  /** Keeps `elevation` for `ttlMs` (ms), replacing the session's earlier one at its acr. */
  recordElevation(subject: string, sessionId: string, elevation: Elevation, ttlMs: number): Promise<void>;
  /**
   * Ends the session: records `endedAtMs` (epoch ms) for `revocationTtlMs`, so grants issued
   * until then are revoked, and drops its elevations at `acrs`.
   */
  end(
    subject: string,
    sessionId: string,
    endedAtMs: number,
    revocationTtlMs: number,
    acrs: string[],
  ): Promise<void>;
  /** When the session was ended (epoch ms), if it was. */
  endedAt(subject: string, sessionId: string): Promise<number | undefined>;
}

/** Revocations are mirrored durably: a Redis that restarts empty must not re-open an ended session. */
export function createSessionStore(hot: HotStore, mirror: DurableMirror = noMirror): SessionStore {
  return {
    async findElevations(subject, sessionId, acrs) {
      const values = await hot.getMany(acrs.map((acr) => hotKeys.elevation(subject, sessionId, acr)));
      return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as Elevation);
    },
    async recordElevation(subject, sessionId, elevation, ttlMs) {
      await hot.set(hotKeys.elevation(subject, sessionId, elevation.acr), JSON.stringify(elevation), ttlMs);
    },
    async end(subject, sessionId, endedAtMs, revocationTtlMs, acrs) {
      const key = hotKeys.revoked(subject, sessionId);
      await Promise.all([
        hot.set(key, String(endedAtMs), revocationTtlMs),
        mirror.run((durable) => durable.raise(key, endedAtMs, revocationTtlMs), undefined),
      ]);
      await hot.delete(...acrs.map((acr) => hotKeys.elevation(subject, sessionId, acr)));
    },
    async endedAt(subject, sessionId) {
      const v = await hot.get(hotKeys.revoked(subject, sessionId));
      return v === null ? undefined : Number(v);
    },
  };
}
