import { longestGrantLifetimeMs } from "../policy/assurance.ts";
import type { Policy } from "../policy/policy.ts";

/**
 * Where a signing key is in its life: `next` (published, not signing yet), `current` (signs),
 * `previous` (published, no longer signs, grants it signed may still be valid), `retired` (neither).
 */
export type SigningKeyState = "next" | "current" | "previous" | "retired";

/** The times a key's life is derived from, as stored (epoch ms). */
export interface KeyTimes {
  kid: string;
  generation: number;
  signsFrom: number;
  retiredAt?: number | undefined;
}

/** A key's state at a given time, with the times that decided it (epoch ms). */
export interface KeyLife<K extends KeyTimes = KeyTimes> {
  key: K;
  state: SigningKeyState;
  /** When the key after it starts signing; undefined while none is due after it. */
  signsUntil?: number | undefined;
  /** When it retires (or retired); undefined while it has no end. */
  retiresAt?: number | undefined;
}

const bySigningOrder = (a: KeyTimes, b: KeyTimes) => a.signsFrom - b.signsFrom || a.generation - b.generation;

const retiredBy = (key: KeyTimes, at: number) => key.retiredAt !== undefined && key.retiredAt <= at;

/**
 * Each key's state at `now` (epoch ms), in signing order. Keys sign one after another by
 * `signsFrom`; a key retired before it ever signed is skipped. The current key is the last one that
 * began signing and is not retired (the first one, when the clock is behind every key). A key that
 * stopped signing stays published for `retentionMs` after its end, so every grant it signed expires
 * first, then retires; an explicit `retiredAt` retires it earlier. Pure: every replica derives the
 * same answer from the same rows and time.
 */
export function keyLives<K extends KeyTimes>(
  keys: readonly K[],
  now: number,
  retentionMs: number,
): KeyLife<K>[] {
  const ordered = [...keys].sort(bySigningOrder);
  // A key retired before it began never signed: it does not end its predecessor's window.
  const succession = ordered.filter((k) => !retiredBy(k, k.signsFrom));
  const signsUntil = new Map<K, number | undefined>();
  succession.forEach((k, i) => {
    signsUntil.set(k, succession[i + 1]?.signsFrom);
  });
  const usable = succession.filter((k) => !retiredBy(k, now));
  const current = usable.findLast((k) => k.signsFrom <= now) ?? usable[0];
  return ordered.map((key): KeyLife<K> => {
    const until = signsUntil.has(key) ? signsUntil.get(key) : key.signsFrom;
    if (retiredBy(key, now)) return { key, state: "retired", signsUntil: until, retiresAt: key.retiredAt };
    if (key === current) return { key, state: "current", signsUntil: until };
    if (key.signsFrom > now || until === undefined) return { key, state: "next", signsUntil: until };
    const retiresAt = Math.min(until + retentionMs, key.retiredAt ?? Number.POSITIVE_INFINITY);
    return { key, state: now < retiresAt ? "previous" : "retired", signsUntil: until, retiresAt };
  });
}

/**
 * True when the schedule should create the next key: rotation is on (`rotateEveryMs` > 0), no key
 * is waiting to sign, and the current one has signed for `rotateEveryMs` or longer.
 */
export function rotationDue(lives: readonly KeyLife[], now: number, rotateEveryMs: number): boolean {
  if (rotateEveryMs <= 0 || lives.some((l) => l.state === "next")) return false;
  const current = lives.find((l) => l.state === "current");
  return current !== undefined && now - current.key.signsFrom >= rotateEveryMs;
}

/** How long the current key has signed at `now`, in ms; undefined while no key is current. */
export function currentKeyAgeMs(lives: readonly KeyLife[], now: number): number | undefined {
  const current = lives.find((l) => l.state === "current");
  return current === undefined ? undefined : Math.max(0, now - current.key.signsFrom);
}

/**
 * The age in ms by which the schedule has the next key signing: a successor is created once the
 * current key has signed `rotateEveryMs`, and signs `publishLeadMs` later. 0 when rotation is only
 * on command (`rotateEveryMs` 0).
 */
export function scheduledKeyAgeMs(rotateEveryMs: number, publishLeadMs: number): number {
  return rotateEveryMs > 0 ? rotateEveryMs + publishLeadMs : 0;
}

/** The generation the next key takes: one past every stored key's. */
export function nextGeneration(keys: readonly KeyTimes[]): number {
  return Math.max(0, ...keys.map((k) => k.generation)) + 1;
}

/** Clock skew between replicas and verifiers allowed for, in ms: a minute, as for revocations. */
const skewMs = 60_000;

/**
 * How long a key stays published after it stops signing, in ms: the longest grant lifetime in the
 * policy, so every grant it signed expires first, plus clock skew.
 */
export function keyRetentionMs(policy: Policy): number {
  return longestGrantLifetimeMs(policy) + skewMs;
}
