import type { KeyRing } from "../crypto/key-ring.ts";
import type { Clock } from "../domain/clock.ts";
import type { SigningKeyStore } from "../store/signing-key-store.ts";
import { createSigningKey } from "./new-signing-key.ts";
import { keyLives, nextGeneration } from "./signing-key-lifecycle.ts";
import { signingKeyEvents } from "./signing-key-rotation.ts";

/** A rotation on command: `now` makes the new key sign at once; `retirePrevious` (with `now`) retires every other key. */
export interface RotateRequest {
  now: boolean;
  retirePrevious: boolean;
}

/** What a rotation did, by kid (never key material); times are epoch ms. */
export interface Rotation {
  /** The key created; undefined when a next key was waiting already (without `now`), or on contention. */
  created?: { kid: string; generation: number; signsFrom: number };
  /** A next key that was published already. */
  waiting?: { kid: string; signsFrom: number };
  /** The key that signed until now, and until when it stays published (unless retired). */
  previous?: { kid: string; publishedUntil: number };
  /** The keys `retirePrevious` retired. */
  retired: string[];
  /** True when other replicas kept taking the next generation: nothing was created, try again. */
  contended: boolean;
}

/**
 * Creates the next grant-signing key, published at once and signing after `publishLeadMs`, unless
 * a next key is waiting already; with `now` it signs at once, and with `retirePrevious` every
 * other key is retired at once. Each change is recorded with `record` (the `signing_key.created`
 * and `signing_key.retired` events, `by` naming the command). Another replica or operator may
 * take the generation first: it reads again and decides again, three times at most. Rejects with
 * the store's error.
 */
export type RotateSigningKey = (request: RotateRequest) => Promise<Rotation>;

export interface RotateSigningKeyDeps {
  store: SigningKeyStore;
  keyRing: KeyRing;
  clock: Clock;
  /** How long a key stays published after it stops signing, in ms (`keyRetentionMs`). */
  retentionMs: number;
  /** How long a new key is published before it signs, in ms. */
  publishLeadMs: number;
  /** Records one audit event of the keys' lives (its details: kid, times, `by`). */
  record: (type: string, details: Record<string, unknown>) => Promise<void>;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function createRotateSigningKey(deps: RotateSigningKeyDeps): RotateSigningKey {
  const { store, keyRing, retentionMs } = deps;
  return async (request) => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = deps.clock();
      const lives = keyLives(await store.list(), now, retentionMs);
      const next = lives.find((l) => l.state === "next");
      const waiting = next && { kid: next.key.kid, signsFrom: next.key.signsFrom };
      if (waiting !== undefined && !request.now) return { waiting, retired: [], contended: false };
      const signsFrom = request.now || lives.length === 0 ? now : now + deps.publishLeadMs;
      const generation = nextGeneration(lives.map((l) => l.key));
      const created = await createSigningKey({ store, keyRing }, { generation, signsFrom, now });
      if (created === undefined) continue;
      await deps.record(signingKeyEvents.created, {
        kid: created.kid,
        signs_from: iso(signsFrom),
        by: request.now ? "command --now" : "command",
      });
      const current = lives.find((l) => l.state === "current");
      const rotation: Rotation = {
        created: { kid: created.kid, generation, signsFrom },
        ...(waiting ? { waiting } : {}),
        ...(current ? { previous: { kid: current.key.kid, publishedUntil: signsFrom + retentionMs } } : {}),
        retired: [],
        contended: false,
      };
      if (!request.retirePrevious) return rotation;
      for (const life of lives) {
        if (life.state === "retired" || !(await store.retire(life.key.kid, now))) continue;
        await deps.record(signingKeyEvents.retired, { kid: life.key.kid, by: "command --retire-previous" });
        rotation.retired.push(life.key.kid);
      }
      return rotation;
    }
    return { retired: [], contended: true };
  };
}
