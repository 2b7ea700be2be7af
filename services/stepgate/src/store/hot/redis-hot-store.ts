import type { Redis } from "ioredis";
import type { RedisTarget } from "../../config/redis-target.ts";
import type { Dependency } from "../dependency.ts";
import type { HotStore } from "./hot-store.ts";
import { connectRedis, keepConnecting } from "./redis-connection.ts";

// INCR and set the expiry in one atomic step: on creation, or every time when sliding.
const incrementScript = `
local n = redis.call('INCR', KEYS[1])
if n == 1 or ARGV[2] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

// The two counters of an attempt in one step: the second only moves while the first is within its limit.
const incrementBothScript = `
local held = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if held >= tonumber(ARGV[5]) then return {-1, held} end
local a = redis.call('INCR', KEYS[1])
if a == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if a > tonumber(ARGV[2]) then return {a, -1} end
local b = redis.call('INCR', KEYS[2])
if b == 1 or ARGV[4] == '1' then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return {a, b}`;

// Raise a numeric entry to at least ARGV[1]: security state carried over never goes down.
const raiseScript = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 0`;

// DECR that keeps the expiry and never goes below zero or creates the key.
const decrementScript = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if n > 0 then redis.call('DECR', KEYS[1]) end
return 0`;

// Set "version:value" unless the stored entry has a higher version.
const setVersionedScript = `
local current = redis.call('GET', KEYS[1])
if current then
  local stored = tonumber(string.match(current, '^(%d+):'))
  if stored and stored > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 1`;

// Move a "position:owner" marker forward; see HotStore.advance.
const advanceScript = `
local current = redis.call('GET', KEYS[1])
local position = tonumber(ARGV[1])
if current then
  local sep = string.find(current, ':', 1, true)
  local held = tonumber(string.sub(current, 1, sep - 1))
  local owner = string.sub(current, sep + 1)
  if held > position or (held == position and owner ~= ARGV[2]) then return 'behind' end
  if held == position then return 'held' end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 'advanced'`;

// Claim KEYS[1] for ARGV[1] (kept ARGV[2] ms) unless another value holds it, then apply the writes:
// KEYS[i] with ARGV[2i-1] as value and ARGV[2i] as ms, or deleted when ARGV[2i] is '-'.
const claimThenWriteScript = `
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return held end
if not held then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
for i = 2, #KEYS do
  if ARGV[2 * i] == '-' then redis.call('DEL', KEYS[i])
  else redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ARGV[2 * i]) end
end
return ARGV[1]`;

/** The scripts above, each registered once per connection (`defineCommand`): sent by SHA after its first use. */
const scripts = {
  stepgateIncrement: { numberOfKeys: 1, lua: incrementScript },
  stepgateIncrementBoth: { numberOfKeys: 2, lua: incrementBothScript },
  stepgateRaise: { numberOfKeys: 1, lua: raiseScript },
  stepgateDecrement: { numberOfKeys: 1, lua: decrementScript },
  stepgateSetVersioned: { numberOfKeys: 1, lua: setVersionedScript },
  stepgateAdvance: { numberOfKeys: 1, lua: advanceScript },
  // Its key count varies: the first argument gives it.
  stepgateClaimThenWrite: { lua: claimThenWriteScript },
} as const;

type ScriptName = keyof typeof scripts;
/** Runs a registered script with its keys and arguments; ioredis prefixes the keys. */
type RunScript = (name: ScriptName, ...keysAndArgs: string[]) => Promise<unknown>;

/**
 * Registers the scripts on `redis`. ioredis then sends EVALSHA (EVAL on a connection's first use,
 * and again after NOSCRIPT from a Redis that restarted empty), so a call carries 40 bytes of SHA
 * instead of the script and Redis skips hashing its text.
 */
function defineScripts(redis: Redis): RunScript {
  for (const [name, script] of Object.entries(scripts)) redis.defineCommand(name, script);
  const commands = redis as unknown as Record<ScriptName, (...a: string[]) => Promise<unknown>>;
  return (name, ...keysAndArgs) => commands[name](...keysAndArgs);
}

const connections = new WeakMap<HotStore, Redis>();

/**
 * The Redis connection under a hot store `createRedisHotStore` made (undefined for any other), for
 * stores that share it, e.g. the audit outbox: its commands then ride the same auto-pipelined writes.
 * Closed by the hot store's `close()`.
 */
export function redisConnectionOf(store: HotStore): Redis | undefined {
  return connections.get(store);
}

export interface RedisHotStoreOptions {
  /** One server (redis:// or rediss:// URL) or the primary Sentinel names. */
  target: RedisTarget;
  /** Prepended to every key. */
  prefix: string;
  /** Every command runs through it (breaker and timeout); its call timeout also bounds each command. */
  dependency: Dependency;
  /** How long a connection attempt may take, in ms. */
  connectTimeoutMs: number;
  /** Told when the client gave up reconnecting and is made to connect again (see keepConnecting). */
  onRestart?: () => void;
}

/** The Redis hot store, plus what its owner needs to know about the connection. */
export interface RedisHotStore extends HotStore {
  /** Resolves once connected, or after `timeoutMs` (ms) without; never rejects. */
  ready(timeoutMs: number): Promise<boolean>;
  /**
   * Told each time the connection is made again after a loss. Redis may have restarted empty or
   * failed over: state that must not be lost has to be carried back (see store/hot/resync.ts).
   */
  onReconnect(listener: () => void): void;
  /** PING as the health probe: the trial call of an open circuit (see Dependency.probe). */
  probe(): Promise<void>;
}

/** The hot store on Redis; every key carries the configured prefix. */
export function createRedisHotStore(options: RedisHotStoreOptions): RedisHotStore {
  const redis = connectRedis(options.target, {
    keyPrefix: options.prefix,
    connectTimeoutMs: options.connectTimeoutMs,
    commandTimeoutMs: options.dependency.callTimeoutMs,
  });
  const script = defineScripts(redis);
  // Connection errors surface through the commands and health; the client reconnects itself.
  redis.on("error", () => {});
  let closing = false;
  keepConnecting(redis, () => closing, options.onRestart);
  const reconnectListeners: (() => void)[] = [];
  let connectedBefore = false;
  redis.on("ready", () => {
    if (connectedBefore) for (const listener of reconnectListeners) listener();
    connectedBefore = true;
  });
  const guard = options.dependency;
  const store: RedisHotStore = {
    kind: "redis",
    ready: (timeoutMs) =>
      redis.status === "ready"
        ? Promise.resolve(true)
        : new Promise((resolve) => {
            const timer = setTimeout(() => resolve(false), timeoutMs);
            redis.once("ready", () => {
              clearTimeout(timer);
              resolve(true);
            });
          }),
    onReconnect(listener) {
      reconnectListeners.push(listener);
    },
    async probe() {
      await guard.probe(() => redis.ping());
    },
    get: (key) => redis.get(key),
    getMany: (keys) => (keys.length === 0 ? Promise.resolve([]) : redis.mget(keys)),
    async set(key, value, ttlMs) {
      await redis.set(key, value, "PX", Math.max(1, Math.ceil(ttlMs)));
    },
    async setIfAbsent(key, value, ttlMs) {
      return (await redis.set(key, value, "PX", Math.max(1, Math.ceil(ttlMs)), "NX")) === "OK";
    },
    async increment(key, ttlMs, sliding = false) {
      const n = await script(
        "stepgateIncrement",
        key,
        String(Math.max(1, Math.ceil(ttlMs))),
        sliding ? "1" : "0",
      );
      return Number(n);
    },
    async incrementBoth(first, second) {
      const ms = (t: number) => String(Math.max(1, Math.ceil(t)));
      const [a, b] = (await script(
        "stepgateIncrementBoth",
        first.key,
        second.key,
        ms(first.ttlMs),
        String(first.limit),
        ms(second.ttlMs),
        second.sliding ? "1" : "0",
        String(second.limit),
      )) as [number, number];
      const count = (n: number) => (n < 0 ? undefined : Number(n));
      return [count(a), count(b)];
    },
    async setVersioned(key, version, value, ttlMs) {
      const ms = String(Math.max(1, Math.ceil(ttlMs)));
      return (await script("stepgateSetVersioned", key, String(version), value, ms)) === 1;
    },
    async advance(key, position, owner, ttlMs) {
      const ms = String(Math.max(1, Math.ceil(ttlMs)));
      return (await script("stepgateAdvance", key, String(position), owner, ms)) as
        | "advanced"
        | "held"
        | "behind";
    },
    async claimThenWrite(claim, writes) {
      const ms = (t: number) => String(Math.max(1, Math.ceil(t)));
      const keys = [claim.key, ...writes.map((w) => w.key)];
      const args = [claim.value, ms(claim.ttlMs)];
      for (const w of writes) args.push(...("delete" in w ? ["", "-"] : [w.value, ms(w.ttlMs)]));
      return String(await script("stepgateClaimThenWrite", String(keys.length), ...keys, ...args));
    },
    async decrement(key) {
      await script("stepgateDecrement", key);
    },
    async raise(key, count, ttlMs) {
      await script("stepgateRaise", key, String(count), String(Math.max(1, Math.ceil(ttlMs))));
    },
    ttl: async (key) => Math.max(0, await redis.pttl(key)),
    async delete(...keys) {
      if (keys.length > 0) await redis.del(...keys);
    },
    async close() {
      closing = true;
      await redis.quit().catch(() => {});
      // QUIT alone leaves Sentinel's failover-detector subscriptions open; disconnect() ends them.
      redis.disconnect();
    },
  };
  const wrapped = guarded(store, guard);
  connections.set(wrapped, redis);
  return wrapped;
}

const unguarded = new Set(["kind", "ready", "onReconnect", "probe", "close"]);

/** Every store operation through the dependency's breaker and timeout. */
function guarded(store: RedisHotStore, dependency: Dependency): RedisHotStore {
  const wrapped: Record<string, unknown> = { ...store };
  for (const [name, fn] of Object.entries(store)) {
    if (unguarded.has(name) || typeof fn !== "function") continue;
    wrapped[name] = (...args: unknown[]) =>
      dependency.run(() => (fn as (...a: unknown[]) => Promise<unknown>)(...args));
  }
  return wrapped as unknown as RedisHotStore;
}
