import type { Policy } from "../config/policy.ts";
import { hotKey } from "../domain/hot-keys.ts";
import { levelsAtLeast } from "../policy/assurance.ts";
import type { HotStore } from "../store/hot-store.ts";

/** What a session proved with a second factor, and when (seconds). */
export interface Elevation {
  acr: string;
  amr: string[];
  method: string;
  authTime: number;
}

/** Sessions' elevations and revocations, in the hot store. */
export interface Elevations {
  /** The elevations at `acr` or stronger that the session holds. */
  find(subject: string, sessionId: string, acr: string): Promise<Elevation[]>;
  record(subject: string, sessionId: string, elevation: Elevation): Promise<void>;
  /** Ends the session: drops its elevations and revokes grants issued before now. */
  end(subject: string, sessionId: string, nowMs: number): Promise<void>;
  /** When the session was ended, in ms, if it was. */
  revokedAt(subject: string, sessionId: string): Promise<number | undefined>;
}

export function createElevations(hot: HotStore, policy: Policy, grantLifetimeMs: number): Elevations {
  const keyOf = (subject: string, sessionId: string, acr: string) =>
    hotKey("elevation", subject, sessionId, acr);
  // An elevation is worth keeping as long as the most lenient action could still accept it.
  const maxAgeMs = Math.max(1, ...[...policy.actions.values()].map((a) => a.maxAge)) * 1000;
  return {
    async find(subject, sessionId, acr) {
      const values = await hot.getMany(levelsAtLeast(policy, acr).map((l) => keyOf(subject, sessionId, l)));
      return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as Elevation);
    },
    async record(subject, sessionId, elevation) {
      await hot.set(keyOf(subject, sessionId, elevation.acr), JSON.stringify(elevation), maxAgeMs);
    },
    async end(subject, sessionId, nowMs) {
      await hot.set(hotKey("revoked", subject, sessionId), String(nowMs), grantLifetimeMs + 60_000);
      await hot.delete(...policy.levels.map((l) => keyOf(subject, sessionId, l)));
    },
    async revokedAt(subject, sessionId) {
      const v = await hot.get(hotKey("revoked", subject, sessionId));
      return v === null ? undefined : Number(v);
    },
  };
}
