import type { KeyObject } from "node:crypto";
import type { Jwk } from "@stepgate/grant";
import type { KeyRing } from "../crypto/key-ring.ts";
import type { Clock } from "../domain/clock.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { SigningKeyStore, StoredSigningKey } from "../store/signing-key-store.ts";
import type { StartupCopies } from "../store/startup-copies.ts";
import { createSigningKey, openSigningKey } from "./new-signing-key.ts";
import { type KeyLife, keyLives } from "./signing-key-lifecycle.ts";

/** The grant-signing keys as this replica sees them, their states derived from its clock. */
export interface SigningKeys {
  /**
   * The key grants are signed with now: the current key by the clock, or, while that one's private
   * half cannot be opened, the last key that signed here.
   */
  signingKey(): { kid: string; privateKey: KeyObject };
  /** The next, current and previous keys' public halves (RFC 7517 `keys`), in signing order. */
  published(): Jwk[];
  /** True while grants signed by `kid` may be accepted: it is a next, current or previous key. */
  isPublished(kid: string): boolean;
  /** Every stored key's state now, in signing order. */
  lives(): KeyLife<StoredSigningKey>[];
  /**
   * Reads the keys from PostgreSQL again and opens the private halves of the next and current
   * ones. Resolves false, keeping the keys it has, while PostgreSQL is down; rejects with the
   * store's other errors.
   */
  refresh(): Promise<boolean>;
}

export interface SigningKeysDeps {
  store: SigningKeyStore;
  /** Seals new private keys and opens the next and current ones. */
  keyRing: KeyRing;
  /** Where the keys, still sealed, are copied for a start while PostgreSQL is down. */
  copies: StartupCopies;
  clock: Clock;
  /** How long a key stays published after it stops signing, in ms (see `keyRetentionMs`). */
  retentionMs: number;
  /** Told once per kid whose private half cannot be opened (serving goes on with the keys it has). */
  onUnopenable?: (kid: string, error: unknown) => void;
}

interface CopiedKey extends Omit<StoredSigningKey, "sealedPrivateKey"> {
  sealedPrivateKey: string;
}

const copyName = "signing-keys";

/** The startup copy, read back; copies of earlier releases have no generation nor start time. */
function fromCopy(copy: string): StoredSigningKey[] {
  return (JSON.parse(copy) as Partial<CopiedKey>[]).map((r, i) => ({
    kid: r.kid as string,
    publicJwk: r.publicJwk as Jwk,
    sealedPrivateKey: Buffer.from(r.sealedPrivateKey ?? "", "base64"),
    generation: r.generation ?? i + 1,
    signsFrom: r.signsFrom ?? 0,
    retiredAt: r.retiredAt ?? undefined,
  }));
}

function toCopy(rows: StoredSigningKey[]): string {
  const copy: CopiedKey[] = rows.map((r) => ({
    ...r,
    sealedPrivateKey: r.sealedPrivateKey.toString("base64"),
  }));
  return JSON.stringify(copy);
}

/** The stored keys, the first one created if there is none; from the startup copy while PostgreSQL is down. */
async function storedKeys({ store, keyRing, copies, clock }: SigningKeysDeps): Promise<StoredSigningKey[]> {
  try {
    let rows = await store.list();
    if (rows.length === 0) {
      // Replicas starting together race for generation 1; the store lets exactly one win.
      await createSigningKey({ store, keyRing }, { generation: 1, signsFrom: clock(), now: clock() });
      rows = await store.list();
    }
    await copies.save(copyName, toCopy(rows)).catch(() => {});
    return rows;
  } catch (error) {
    if (!(error instanceof DependencyUnavailableError)) throw error;
    const copy = await copies.load(copyName).catch(() => null);
    if (copy === null) throw error;
    return fromCopy(copy);
  }
}

/** What decides the keys' lives: a change of it is worth a new startup copy. */
const lifeTimes = (rows: StoredSigningKey[]) =>
  rows.map((r) => `${r.kid}:${r.signsFrom}:${r.retiredAt ?? ""}`).join(",");

/**
 * Loads the signing keys, creating the first one if there is none. Replicas that start together
 * each try to insert a key; the store lets exactly one win. While PostgreSQL is down, the keys
 * come from the startup copy the last start or refresh saved. Fails with a ConfigError when the key
 * ring cannot open the current key (another ring sealed it), or with the
 * DependencyUnavailableError when PostgreSQL is down and there is no copy. A next key that cannot
 * be opened is only reported (`onUnopenable`).
 */
export async function loadSigningKeys(deps: SigningKeysDeps): Promise<SigningKeys> {
  const { keyRing, clock, retentionMs } = deps;
  let rows = await storedKeys(deps);
  const opened = new Map<string, KeyObject>();
  const unopenable = new Set<string>();
  const lives = () => keyLives(rows, clock(), retentionMs);

  const openDue = () => {
    for (const life of lives()) {
      const { kid } = life.key;
      if (life.state === "retired") opened.delete(kid);
      if ((life.state !== "next" && life.state !== "current") || opened.has(kid) || unopenable.has(kid))
        continue;
      try {
        opened.set(kid, openSigningKey(keyRing, life.key));
      } catch (error) {
        unopenable.add(kid);
        deps.onUnopenable?.(kid, error);
      }
    }
  };

  const current = lives().find((l) => l.state === "current");
  if (current === undefined) throw new Error("no signing key to sign with");
  // At start there is no earlier key to fall back on: a current key that cannot be opened stops it.
  let signer = { kid: current.key.kid, privateKey: openSigningKey(keyRing, current.key) };
  opened.set(signer.kid, signer.privateKey);
  openDue();
  let saved = lifeTimes(rows);

  return {
    signingKey() {
      const due = lives().find((l) => l.state === "current");
      if (due === undefined || due.key.kid === signer.kid) return signer;
      if (!opened.has(due.key.kid)) openDue();
      const privateKey = opened.get(due.key.kid);
      if (privateKey !== undefined) signer = { kid: due.key.kid, privateKey };
      return signer;
    },
    published: () => lives().flatMap((l) => (l.state === "retired" ? [] : [l.key.publicJwk])),
    isPublished: (kid) => lives().some((l) => l.key.kid === kid && l.state !== "retired"),
    lives,
    async refresh() {
      let fresh: StoredSigningKey[];
      try {
        fresh = await deps.store.list();
      } catch (error) {
        if (error instanceof DependencyUnavailableError) return false;
        throw error;
      }
      // No table empties itself: an empty answer keeps the keys this replica has.
      if (fresh.length === 0) return true;
      rows = fresh;
      openDue();
      if (lifeTimes(rows) !== saved) {
        saved = lifeTimes(rows);
        await deps.copies.save(copyName, toCopy(rows)).catch(() => {});
      }
      return true;
    },
  };
}
