import type { Elevation } from "../domain/elevation.ts";
import { type DurableMirror, noMirror } from "./durable-mirror.ts";
import type { HotStore, HotWrite } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** When what a grant rests on was ended (epoch ms); absent when it was not. */
export interface Revocations {
  /** The session was ended (EndSession). */
  sessionEndedAt?: number;
  /** The factor whose proof produced the grant was removed or replaced. */
  factorEndedAt?: number;
}

/** What a session holds: its end (epoch ms), if it was ended, and its live elevations. */
export interface SessionStanding {
  endedAt?: number;
  elevations: Elevation[];
}

/** Sessions' elevations and revocations. The only owner of revocation state. */
export interface SessionStore {
  /**
   * Whether the session was ended, and its elevations at any of `acrs` (none once it was ended,
   * none whose factor was ended). `acrs` empty reads only the end, in one round trip either way.
   */
  standing(subject: string, sessionId: string, acrs: string[]): Promise<SessionStanding>;
  /** Keeps `elevation` for `ttlMs` (ms), replacing the session's earlier one at its acr. */
  recordElevation(subject: string, sessionId: string, elevation: Elevation, ttlMs: number): Promise<void>;
  /** The write `recordElevation` makes, to apply with others (HotStore.claimThenWrite). */
  elevationWrite(subject: string, sessionId: string, elevation: Elevation, ttlMs: number): HotWrite;
  /**
   * Ends the session for good: records `endedAtMs` (epoch ms) for `revocationTtlMs`, so every grant
   * issued to it is revoked and it gets no new one, and drops its elevations at `acrs`.
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
  /**
   * Ends a factor that was removed or replaced: every elevation it produced stops counting and
   * every grant naming it (`fid`) is revoked. Records `endedAtMs` (epoch ms) for `ttlMs` (ms),
   * which must outlive those elevations and grants.
   */
  endFactor(factorId: string, endedAtMs: number, ttlMs: number): Promise<void>;
  /** True when the factor was ended (removed or replaced). */
  factorEnded(factorId: string): Promise<boolean>;
  /** When the session and the factor were ended, read in one round trip. */
  revocations(subject: string, sessionId: string, factorId: string | undefined): Promise<Revocations>;
}

const epochMs = (v: string | null | undefined) => (v === null || v === undefined ? undefined : Number(v));

/**
 * Revocations are mirrored durably: a Redis that restarts empty must not re-open an ended session
 * or bring back an ended factor's elevations.
 */
export function createSessionStore(hot: HotStore, mirror: DurableMirror = noMirror): SessionStore {
  const recordDurably = async (key: string, atMs: number, ttlMs: number) => {
    await Promise.all([
      hot.set(key, String(atMs), ttlMs),
      mirror.run((durable) => durable.raise(key, atMs, ttlMs), undefined),
    ]);
  };
  return {
    async standing(subject, sessionId, acrs) {
      const keys = acrs.map((acr) => hotKeys.elevation(subject, sessionId, acr));
      const values = await hot.getMany([hotKeys.revoked(subject, sessionId), ...keys]);
      const endedAt = epochMs(values.shift());
      // An ended session holds nothing, even an elevation a proof checked as it ended recorded after.
      if (endedAt !== undefined) return { endedAt, elevations: [] };
      const found = values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as Elevation);
      const factorIds = found.flatMap((e) => (e.factorId === undefined ? [] : [e.factorId]));
      if (factorIds.length === 0) return { elevations: found };
      // A second round trip only when an elevation was found: its factor may have been removed since.
      const ended = await hot.getMany(factorIds.map((id) => hotKeys.factorEnded(id)));
      const endedIds = new Set(factorIds.filter((_, i) => ended[i] !== null));
      return { elevations: found.filter((e) => e.factorId === undefined || !endedIds.has(e.factorId)) };
    },
    async recordElevation(subject, sessionId, elevation, ttlMs) {
      await hot.set(hotKeys.elevation(subject, sessionId, elevation.acr), JSON.stringify(elevation), ttlMs);
    },
    elevationWrite: (subject, sessionId, elevation, ttlMs) => ({
      key: hotKeys.elevation(subject, sessionId, elevation.acr),
      value: JSON.stringify(elevation),
      ttlMs,
    }),
    async end(subject, sessionId, endedAtMs, revocationTtlMs, acrs) {
      await recordDurably(hotKeys.revoked(subject, sessionId), endedAtMs, revocationTtlMs);
      await hot.delete(...acrs.map((acr) => hotKeys.elevation(subject, sessionId, acr)));
    },
    endedAt: async (subject, sessionId) => epochMs(await hot.get(hotKeys.revoked(subject, sessionId))),
    endFactor: (factorId, endedAtMs, ttlMs) => recordDurably(hotKeys.factorEnded(factorId), endedAtMs, ttlMs),
    factorEnded: async (factorId) => (await hot.get(hotKeys.factorEnded(factorId))) !== null,
    async revocations(subject, sessionId, factorId) {
      const keys = [hotKeys.revoked(subject, sessionId)];
      if (factorId !== undefined) keys.push(hotKeys.factorEnded(factorId));
      const [session, factor] = await hot.getMany(keys);
      const sessionEndedAt = epochMs(session);
      const factorEndedAt = epochMs(factor);
      return {
        ...(sessionEndedAt === undefined ? {} : { sessionEndedAt }),
        ...(factorEndedAt === undefined ? {} : { factorEndedAt }),
      };
    },
  };
}
