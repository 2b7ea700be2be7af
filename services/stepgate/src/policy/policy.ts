import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { z } from "zod";
import { ConfigError, describeIssues } from "../config/config-error.ts";
import { type MethodName, methodNames } from "../domain/method.ts";
import { type Priority, priorities } from "../domain/priority.ts";

/** The management actions that guard factor changes; every policy must define them. */
export const managementActions = {
  enrollTotp: "stepgate.enroll_totp",
  createRecoveryCodes: "stepgate.create_recovery_codes",
  removeFactor: "stepgate.remove_factor",
} as const;

const seconds = z
  .number()
  .int()
  .min(0)
  .max(86_400 * 30);
const actionName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.:-]{0,127}$/, "must be lowercase letters, digits and . _ : -");

const callerName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    "must be a calling service's name (lowercase letters, digits, . _ -)",
  );
const spiffeId = z
  .string()
  .regex(/^spiffe:\/\/[a-z0-9.-]{1,255}(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/, "must be a SPIFFE ID")
  .max(2048);
const dnsName = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
    "must be a DNS name",
  )
  .max(253);
// `calls` per `per` seconds, counted in fixed windows of `per` seconds.
const rateSchema = z.strictObject({
  calls: z.number().int().min(1).max(10_000_000),
  per: z.number().int().min(1).max(86_400),
});

const policySchema = z.strictObject({
  levels: z.array(z.string().min(1)).min(1),
  // Partial: a deployment may offer only some methods (a record over an enum is exhaustive in zod 4).
  methods: z.partialRecord(
    z.enum(methodNames),
    z.strictObject({ acr: z.string(), amr: z.array(z.string()).min(1) }),
  ),
  challenge: z.strictObject({ ttl: seconds.min(30), max_attempts: z.number().int().min(1).max(20) }),
  lockout: z.strictObject({
    // NIST SP 800-63B 5.2.2: never more than 100 consecutive failed attempts per account.
    max_failures: z.number().int().min(1).max(100),
    duration: seconds.min(1),
  }),
  grant_ttl: seconds.min(1),
  actions: z.record(
    actionName,
    z.strictObject({
      acr: z.string(),
      max_age: seconds,
      methods: z.array(z.enum(methodNames)).min(1).optional(),
      grant_ttl: seconds.min(1).optional(),
      priority: z.enum(priorities).default("normal"),
    }),
  ),
  callers: z
    .record(
      callerName,
      z.strictObject({
        // SPIFFE IDs (URI SANs) or DNS names (DNS SANs) whose client certificates name this caller.
        peers: z.array(z.union([spiffeId, dnsName])).default([]),
        actions: z.array(z.union([z.literal("*"), actionName])).default([]),
        factors: z.enum(["none", "read", "manage"]).default("none"),
        subject_proof: z.enum(["optional", "required"]).default("optional"),
      }),
    )
    .optional(),
  subject_proof: z
    .strictObject({
      issuers: z
        .array(
          z.strictObject({
            issuer: z.string().min(1).max(512),
            jwks_uri: z.url({ protocol: /^https?$/ }),
            audiences: z.array(z.string().min(1).max(256)).min(1),
          }),
        )
        .min(1),
      // NIST SP 800-63B reauthentication: a first factor binds only to a sign-in this recent.
      first_factor_max_age: seconds.min(30).default(600),
    })
    .optional(),
  rate_limits: z
    .strictObject({
      subject: rateSchema.optional(),
      source: rateSchema.optional(),
      caller: rateSchema.optional(),
      callers: z.record(callerName, rateSchema).optional(),
    })
    .optional(),
});

/** What one action requires (RFC 9470 semantics). */
export interface ActionPolicy {
  name: string;
  /** The assurance level required, one of the policy's levels. */
  acr: string;
  /** RFC 9470 max_age in seconds; 0 means every grant is single-use and no elevation is reused. */
  maxAge: number;
  methods: MethodName[];
  /** Lifetime of a grant for this action, in seconds (at most 60 when max_age is 0). */
  grantTtl: number;
  /** Its calls' place when a replica is saturated (default normal). */
  priority: Priority;
}

/** What one calling service may do (the policy's `callers`). */
export interface CallerScope {
  /** The actions it may step up for, verify and check grants of; "*" for every action. */
  actions: Set<string>;
  /** Factor RPCs: none, ListFactors only ("read"), or every factor change too ("manage"). */
  factors: "none" | "read" | "manage";
  /** Whether its calls naming a subject must carry the user's primary-session token. */
  subjectProof: "optional" | "required";
}

/** An identity provider whose tokens prove a subject (OIDC ID tokens or JWT access tokens). */
export interface TrustedIssuer {
  /** The `iss` its tokens carry. */
  issuer: string;
  /** Where its signing keys are published (JWKS, RFC 7517). */
  jwksUri: string;
  /** A token's `aud` must contain one of these. */
  audiences: string[];
}

/** How callers prove that a user is present (the policy's `subject_proof`). */
export interface SubjectProofPolicy {
  issuers: TrustedIssuer[];
  /** How recent `auth_time` must be for a first factor to be enrolled, in seconds. */
  firstFactorMaxAge: number;
}

/** A fleet-wide rate: at most `calls` per `perSeconds` seconds (fixed windows). */
export interface Rate {
  calls: number;
  perSeconds: number;
}

/** Fleet-wide rate limits; an absent one does not apply. */
export interface RateLimitPolicy {
  /** StepUp and Verify calls per subject. */
  subject?: Rate;
  /** Calls per client address. */
  source?: Rate;
  /** Calls per calling service without a quota of its own in `callers`. */
  caller?: Rate;
  /** Quotas of named calling services. */
  callers: Map<string, Rate>;
}

/** What a method proves: the level it reaches and its RFC 8176 amr values. */
export interface MethodPolicy {
  acr: string;
  amr: string[];
}

/** The validated policy file. */
export interface Policy {
  /** Assurance levels, weakest first (e.g. aal1, aal2, aal3). */
  levels: string[];
  methods: Partial<Record<MethodName, MethodPolicy>>;
  /** How long a challenge may be answered, in seconds. */
  challengeTtl: number;
  /** Attempts allowed at one challenge. */
  challengeMaxAttempts: number;
  /** Consecutive failures that lock a subject (NIST SP 800-63B: at most 100). */
  lockoutMaxFailures: number;
  /** How long a lockout lasts after the latest failure, in seconds. */
  lockoutDuration: number;
  actions: Map<string, ActionPolicy>;
  /**
   * Each calling service's scope; undefined when the policy has no `callers` (every caller may do
   * everything: a development setting).
   */
  callerScopes: Map<string, CallerScope> | undefined;
  /** Client certificate identities (a SPIFFE ID, or a DNS name) to the caller each names. */
  callerPeers: Map<string, string>;
  /** Undefined when no identity provider is trusted (insecure development mode only). */
  subjectProof: SubjectProofPolicy | undefined;
  rateLimits: RateLimitPolicy;
}

const toRate = (r: { calls: number; per: number } | undefined): Rate | undefined =>
  r === undefined ? undefined : { calls: r.calls, perSeconds: r.per };

function rateLimitsOf(doc: z.infer<typeof policySchema>["rate_limits"]): RateLimitPolicy {
  const callers = new Map<string, Rate>();
  for (const [name, rate] of Object.entries(doc?.callers ?? {}))
    callers.set(name, { calls: rate.calls, perSeconds: rate.per });
  const limits: RateLimitPolicy = { callers };
  const subject = toRate(doc?.subject);
  const source = toRate(doc?.source);
  const caller = toRate(doc?.caller);
  if (subject) limits.subject = subject;
  if (source) limits.source = source;
  if (caller) limits.caller = caller;
  return limits;
}

/** Parses a YAML policy document; throws a ConfigError naming every bad key by its path. */
export function parsePolicy(text: string, source = "policy"): Policy {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    throw new ConfigError(`${source}: not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(describeIssues(source, parsed.error.issues));
  const doc = parsed.data;
  const problems: string[] = [];
  const knownLevel = (path: string, acr: string) => {
    if (!doc.levels.includes(acr)) problems.push(`${source}: ${path}: unknown level "${acr}"`);
  };
  for (const [name, method] of Object.entries(doc.methods)) knownLevel(`methods.${name}.acr`, method.acr);
  const actions = new Map<string, ActionPolicy>();
  for (const [name, action] of Object.entries(doc.actions)) {
    knownLevel(`actions.${name}.acr`, action.acr);
    const methods = action.methods ?? methodNames.filter((m) => doc.methods[m]);
    for (const m of methods) {
      if (!doc.methods[m]) problems.push(`${source}: actions.${name}.methods: method "${m}" is not defined`);
    }
    actions.set(name, {
      name,
      acr: action.acr,
      maxAge: action.max_age,
      methods,
      grantTtl: Math.min(
        action.grant_ttl ?? doc.grant_ttl,
        action.max_age === 0 ? 60 : Number.MAX_SAFE_INTEGER,
      ),
      priority: action.priority,
    });
  }
  for (const required of Object.values(managementActions)) {
    if (!actions.has(required))
      problems.push(`${source}: actions.${required}: required management action is missing`);
  }
  const callerScopes = doc.callers === undefined ? undefined : new Map<string, CallerScope>();
  const callerPeers = new Map<string, string>();
  for (const [name, scope] of Object.entries(doc.callers ?? {})) {
    for (const action of scope.actions) {
      if (action !== "*" && !actions.has(action))
        problems.push(`${source}: callers.${name}.actions: unknown action "${action}"`);
    }
    callerScopes?.set(name, {
      actions: new Set(scope.actions),
      factors: scope.factors,
      subjectProof: scope.subject_proof,
    });
    for (const peer of scope.peers) {
      const other = callerPeers.get(peer);
      if (other !== undefined)
        problems.push(`${source}: callers.${name}.peers: ${peer} already names ${other}`);
      callerPeers.set(peer, name);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  return {
    levels: doc.levels,
    methods: doc.methods,
    challengeTtl: doc.challenge.ttl,
    challengeMaxAttempts: doc.challenge.max_attempts,
    lockoutMaxFailures: doc.lockout.max_failures,
    lockoutDuration: doc.lockout.duration,
    actions,
    callerScopes,
    callerPeers,
    subjectProof: doc.subject_proof && {
      issuers: doc.subject_proof.issuers.map((i) => ({
        issuer: i.issuer,
        jwksUri: i.jwks_uri,
        audiences: i.audiences,
      })),
      firstFactorMaxAge: doc.subject_proof.first_factor_max_age,
    },
    rateLimits: rateLimitsOf(doc.rate_limits),
  };
}

/** Reads and validates the policy file; throws a ConfigError if it cannot be read or is invalid. */
export function loadPolicy(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new ConfigError(`STEPGATE_POLICY_FILE: cannot read ${path}`);
  }
  return parsePolicy(text, path);
}
