import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  currentKeyAgeMs,
  type KeyTimes,
  keyLives,
  nextGeneration,
  rotationDue,
  scheduledKeyAgeMs,
} from "./signing-key-lifecycle.ts";

const retention = 180_000;
const key = (kid: string, generation: number, signsFrom: number, retiredAt?: number): KeyTimes => ({
  kid,
  generation,
  signsFrom,
  ...(retiredAt === undefined ? {} : { retiredAt }),
});
/** Each kid's state at `now`, as `kid:state`, in signing order. */
const states = (keys: KeyTimes[], now: number) =>
  keyLives(keys, now, retention).map((l) => `${l.key.kid}:${l.state}`);

describe("keyLives", () => {
  const a = key("a", 1, 0);
  const b = key("b", 2, 10_000);
  const c = key("c", 3, 20_000);

  it("a lone key is current from the start, and before it when the clock is behind", () => {
    assert.deepEqual(states([a], 5), ["a:current"]);
    assert.deepEqual(states([key("a", 1, 1000)], 0), ["a:current"]);
  });

  it("a key is next until its signsFrom, then current; the one before it becomes previous", () => {
    assert.deepEqual(states([a, b], 9_999), ["a:current", "b:next"]);
    assert.deepEqual(states([a, b], 10_000), ["a:previous", "b:current"]);
  });

  it("a previous key retires once the longest grant it signed has expired, skew included", () => {
    assert.deepEqual(states([a, b], 10_000 + retention - 1), ["a:previous", "b:current"]);
    assert.deepEqual(states([a, b], 10_000 + retention), ["a:retired", "b:current"]);
    const [life] = keyLives([a, b], 0, retention);
    assert.equal(life?.signsUntil, 10_000);
    assert.equal(keyLives([a, b], 10_000, retention)[0]?.retiresAt, 10_000 + retention);
  });

  it("each key signs until the next one's signsFrom, whatever order they were stored in", () => {
    assert.deepEqual(states([c, a, b], 15_000), ["a:previous", "b:current", "c:next"]);
    assert.deepEqual(states([a, b, c], 25_000), ["a:previous", "b:previous", "c:current"]);
    assert.deepEqual(states([a, b, c], 10_000 + retention), ["a:retired", "b:previous", "c:current"]);
    assert.deepEqual(states([a, b, c], 20_000 + retention), ["a:retired", "b:retired", "c:current"]);
  });

  it("a stored retirement retires a key at once, and a retirement recorded later changes no other key", () => {
    assert.deepEqual(states([key("a", 1, 0, 12_000), b], 12_000), ["a:retired", "b:current"]);
    // The schedule records the end it derived: the predecessor's window still ends at b's start.
    const stamped = [key("a", 1, 0, 10_000 + retention), key("b", 2, 10_000, 20_000 + retention), c];
    assert.deepEqual(states(stamped, 20_000 + retention), ["a:retired", "b:retired", "c:current"]);
  });

  it("an emergency rotation: a new key signs at once, the old ones retired at the same time", () => {
    const now = 50_000;
    const keys = [key("a", 1, 0, now), key("b", 2, 10_000, now), key("d", 3, now)];
    assert.deepEqual(states(keys, now), ["a:retired", "b:retired", "d:current"]);
    // A replica whose clock is a little behind keeps signing with b until the retirement time.
    assert.deepEqual(states(keys, now - 1), ["a:previous", "b:current", "d:next"]);
  });

  it("a key retired before it signed never signs, and the key before it goes on signing", () => {
    const keys = [a, key("b", 2, 10_000, 5_000)];
    assert.deepEqual(states(keys, 20_000), ["a:current", "b:retired"]);
  });

  it("two keys due at the same time sign in generation order", () => {
    assert.deepEqual(states([a, key("b", 2, 10_000), key("c", 3, 10_000)], 10_000), [
      "a:previous",
      "b:previous",
      "c:current",
    ]);
  });
});

describe("rotationDue", () => {
  const lives = (keys: KeyTimes[], now: number) => keyLives(keys, now, retention);
  const a = key("a", 1, 0);

  it("is due once the current key has signed for the rotation period and no key is next", () => {
    assert.equal(rotationDue(lives([a], 59_999), 59_999, 60_000), false);
    assert.equal(rotationDue(lives([a], 60_000), 60_000, 60_000), true);
  });

  it("is never due while a next key waits, nor when rotation is only on command", () => {
    const waiting = [a, key("b", 2, 70_000)];
    assert.equal(rotationDue(lives(waiting, 65_000), 65_000, 60_000), false);
    assert.equal(rotationDue(lives([a], 10 ** 12), 10 ** 12, 0), false);
  });

  it("counts the period from when the current key began signing, not from its creation", () => {
    const keys = [a, key("b", 2, 100_000)];
    assert.equal(rotationDue(lives(keys, 150_000), 150_000, 60_000), false);
    assert.equal(rotationDue(lives(keys, 160_000), 160_000, 60_000), true);
  });
});

describe("nextGeneration", () => {
  it("is one past the highest stored generation, 1 for none", () => {
    assert.equal(nextGeneration([]), 1);
    assert.equal(nextGeneration([key("a", 1, 0), key("c", 3, 0), key("b", 2, 0)]), 4);
  });
});

describe("currentKeyAgeMs and scheduledKeyAgeMs", () => {
  const lives = (keys: KeyTimes[], now: number) => keyLives(keys, now, retention);

  it("is how long the current key has signed, not the next one waiting nor the one before", () => {
    const keys = [key("a", 1, 0), key("b", 2, 100_000), key("c", 3, 200_000)];
    assert.equal(currentKeyAgeMs(lives(keys, 150_000), 150_000), 50_000);
    assert.equal(currentKeyAgeMs(lives(keys, 250_000), 250_000), 50_000);
  });

  it("is undefined with no key at all, and 0 while the clock is behind the only key", () => {
    assert.equal(currentKeyAgeMs([], 1000), undefined);
    assert.equal(currentKeyAgeMs(lives([key("a", 1, 5000)], 1000), 1000), 0);
  });

  it("the scheduled age is the rotation period plus the publish lead, 0 when rotation is on command", () => {
    assert.equal(scheduledKeyAgeMs(60_000, 15_000), 75_000);
    assert.equal(scheduledKeyAgeMs(0, 15_000), 0);
  });
});
