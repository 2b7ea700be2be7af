import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { ConfigError, describeIssues } from "../config/config-error.ts";
import { type MethodName, methodNames } from "../domain/method.ts";
import type { PasskeyRequirement, RelyingParty } from "../domain/passkey.ts";
import type { Priority } from "../domain/priority.ts";
import { type Condition, compileCondition, neverCondition } from "./condition.ts";
import { ConditionError } from "./condition-check.ts";
import { type Operators, operatorsOf } from "./operators.ts";
import { type PolicyDocument, policySchema } from "./policy-schema.ts";

/** The management actions that guard factor changes; every policy must define them. */
export const managementActions = {
  enrollTotp: "stepgate.enroll_totp",
  /** Optional in a policy file: absent, it requires what `stepgate.enroll_totp` does. */
  enrollPasskey: "stepgate.enroll_passkey",
  createRecoveryCodes: "stepgate.create_recovery_codes",
  removeFactor: "stepgate.remove_factor",
} as const;

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
  /**
   * What a passkey must show to answer for it: the action's `passkey` settings, and user
   * verification with a device-bound credential where only those reach the action's level.
   */
  passkey: PasskeyRequirement;
  /**
   * Grants are bound to one transaction (PSD2 dynamic linking): StepUp and Verify take its
   * details, no elevation is reused, and the grant carries their digest (`txn`).
   */
  bindTransaction: boolean;
  /**
   * The action's rules, in order: the first whose condition holds sets the requirement in its
   * place (policy/requirement.ts). Empty for a rule's own requirement.
   */
  rules: PolicyRule[];
  /** For a rule's requirement: the rule's name (StepUp's `rule`, the audit trail). */
  rule?: string;
}

/** One of an action's rules: a compiled CEL condition and the requirement it sets. */
export interface PolicyRule {
  name: string;
  when: Condition;
  requirement: ActionPolicy;
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
  /** Empty for passkeys, whose amr come from the assertion's flags (factors/passkey.ts `passkeyAmr`). */
  amr: string[];
  /** Passkeys only: the level a device-bound, user-verified passkey reaches (NIST AAL3), when stronger than `acr`. */
  deviceBoundAcr?: string;
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
  /** The operators who may call AdminService (none without an `operators` section). */
  operators: Operators;
  /** Undefined when no identity provider is trusted (insecure development mode only). */
  subjectProof: SubjectProofPolicy | undefined;
  rateLimits: RateLimitPolicy;
  /** How long "seen before" facts are kept and count, in seconds (the policy's `facts.retention`). */
  factRetentionSeconds: number;
  /** Whether some rule reads facts: only then are they recorded and read. */
  readsFacts: boolean;
  /** Each calling service's WebAuthn relying party (its own `webauthn`, else the policy's). */
  relyingParties: Map<string, RelyingParty>;
  /** The policy's `webauthn`: the relying party of callers without one of their own. */
  defaultRelyingParty: RelyingParty | undefined;
}

const toRate = (r: { calls: number; per: number } | undefined): Rate | undefined =>
  r === undefined ? undefined : { calls: r.calls, perSeconds: r.per };

function rateLimitsOf(doc: PolicyDocument["rate_limits"]): RateLimitPolicy {
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
  const methods = methodsOf(doc.methods);
  for (const [name, method] of Object.entries(methods)) {
    knownLevel(`methods.${name}.acr`, method.acr);
    if (method.deviceBoundAcr !== undefined)
      knownLevel(`methods.${name}.device_bound_acr`, method.deviceBoundAcr);
  }
  const reachesLevel = (acr: string, required: string) =>
    doc.levels.indexOf(acr) >= doc.levels.indexOf(required);
  const actions = new Map<string, ActionPolicy>();
  const requirement = (path: string, name: string, fields: RequirementFields): ActionPolicy => {
    knownLevel(`${path}.acr`, fields.acr);
    const allowed = fields.methods ?? methodNames.filter((m) => methods[m]);
    for (const m of allowed) {
      if (!methods[m]) problems.push(`${source}: ${path}.methods: method "${m}" is not defined`);
    }
    // Where only a device-bound, user-verified passkey reaches the level, it must be one.
    const baseReaches = methods.passkey === undefined || reachesLevel(methods.passkey.acr, fields.acr);
    return {
      name,
      acr: fields.acr,
      maxAge: fields.max_age,
      methods: allowed,
      grantTtl: Math.min(
        fields.grant_ttl ?? doc.grant_ttl,
        fields.max_age === 0 ? 60 : Number.MAX_SAFE_INTEGER,
      ),
      priority: fields.priority,
      bindTransaction: fields.bind_transaction,
      passkey: {
        userVerification: fields.passkey?.user_verification === "required" || !baseReaches,
        deviceBound: fields.passkey?.device_bound === true || !baseReaches,
        aaguids: fields.passkey?.aaguids ?? [],
      },
      rules: [],
    };
  };
  for (const [name, action] of Object.entries(withPasskeyEnrolment(doc.actions))) {
    const path = `actions.${name}`;
    const rules = action.rules.map((rule, i) => {
      const { name: ruleName, when, ...overrides } = rule;
      const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
      const fields = { ...action, ...defined } as RequirementFields;
      return ruleOf(
        `${source}: ${path}.rules[${i}] (${ruleName})`,
        ruleName,
        when,
        requirement(`${path}.rules[${i}]`, name, fields),
        problems,
      );
    });
    const names = rules.map((r) => r.name);
    for (const dup of names.filter((n, i) => names.indexOf(n) !== i))
      problems.push(`${source}: ${path}.rules: the name "${dup}" is used twice`);
    actions.set(name, { ...requirement(path, name, action), rules });
  }
  // stepgate.enroll_passkey is optional: absent, it is stepgate.enroll_totp's copy.
  for (const required of Object.values(managementActions).filter(
    (a) => a !== managementActions.enrollPasskey,
  )) {
    if (!actions.has(required))
      problems.push(`${source}: actions.${required}: required management action is missing`);
  }
  const callerScopes = doc.callers === undefined ? undefined : new Map<string, CallerScope>();
  const callerPeers = new Map<string, string>();
  const defaultRelyingParty = relyingPartyOf(doc.webauthn, "webauthn", source, problems);
  const relyingParties = new Map<string, RelyingParty>();
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
    const rp =
      relyingPartyOf(scope.webauthn, `callers.${name}.webauthn`, source, problems) ?? defaultRelyingParty;
    if (rp) relyingParties.set(name, rp);
    for (const peer of scope.peers) {
      const other = callerPeers.get(peer);
      if (other !== undefined)
        problems.push(`${source}: callers.${name}.peers: ${peer} already names ${other}`);
      callerPeers.set(peer, name);
    }
  }
  const operators = operatorsOf(doc.operators, callerPeers, source, problems);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  return {
    levels: doc.levels,
    methods,
    challengeTtl: doc.challenge.ttl,
    challengeMaxAttempts: doc.challenge.max_attempts,
    lockoutMaxFailures: doc.lockout.max_failures,
    lockoutDuration: doc.lockout.duration,
    actions,
    callerScopes,
    callerPeers,
    operators,
    subjectProof: doc.subject_proof && {
      issuers: doc.subject_proof.issuers.map((i) => ({
        issuer: i.issuer,
        jwksUri: i.jwks_uri,
        audiences: i.audiences,
      })),
      firstFactorMaxAge: doc.subject_proof.first_factor_max_age,
    },
    rateLimits: rateLimitsOf(doc.rate_limits),
    factRetentionSeconds: doc.facts.retention,
    readsFacts: [...actions.values()].some((a) => a.rules.some((r) => r.when.facts.size > 0)),
    relyingParties,
    defaultRelyingParty,
  };
}

/** The methods as the service uses them; a passkey's amr are empty (they come from its flags). */
function methodsOf(doc: PolicyDocument["methods"]): Partial<Record<MethodName, MethodPolicy>> {
  const methods: Partial<Record<MethodName, MethodPolicy>> = {};
  if (doc.totp) methods.totp = doc.totp;
  if (doc.recovery_code) methods.recovery_code = doc.recovery_code;
  if (doc.passkey) {
    const { acr, device_bound_acr } = doc.passkey;
    methods.passkey = {
      acr,
      amr: [],
      ...(device_bound_acr === undefined ? {} : { deviceBoundAcr: device_bound_acr }),
    };
  }
  return methods;
}

type ActionDocs = PolicyDocument["actions"];
type RequirementFields = Omit<ActionDocs[string], "rules">;

/** A rule with its condition compiled; a condition that does not compile is added to `problems`. */
function ruleOf(
  at: string,
  name: string,
  when: string,
  requirement: ActionPolicy,
  problems: string[],
): PolicyRule {
  try {
    return { name, when: compileCondition(when), requirement: { ...requirement, rule: name } };
  } catch (error) {
    if (!(error instanceof ConditionError)) throw error;
    problems.push(`${at}: when ${error.message}`);
    return { name, when: neverCondition, requirement };
  }
}

/** The actions with `stepgate.enroll_passkey`, which a policy may leave out: it then requires what `stepgate.enroll_totp` does. */
function withPasskeyEnrolment(actions: ActionDocs): ActionDocs {
  const totp = actions[managementActions.enrollTotp];
  if (actions[managementActions.enrollPasskey] !== undefined || totp === undefined) return actions;
  return { ...actions, [managementActions.enrollPasskey]: totp };
}

/**
 * A `webauthn` entry as a relying party. Each origin must be an exact origin (scheme, host, port),
 * served over https unless its host is localhost (WebAuthn's secure contexts), on the RP id or a
 * subdomain of it (WebAuthn 5.1.3); each breach is added to `problems`.
 */
function relyingPartyOf(
  doc: PolicyDocument["webauthn"],
  path: string,
  source: string,
  problems: string[],
): RelyingParty | undefined {
  if (doc === undefined) return undefined;
  for (const origin of doc.origins) {
    const url = new URL(origin);
    const local = url.hostname === "localhost";
    if (url.origin !== origin)
      problems.push(`${source}: ${path}.origins: "${origin}" is not an origin (scheme://host[:port])`);
    else if (url.protocol !== "https:" && !local)
      problems.push(`${source}: ${path}.origins: "${origin}" must use https`);
    else if (url.hostname !== doc.rp_id && !url.hostname.endsWith(`.${doc.rp_id}`))
      problems.push(`${source}: ${path}.origins: "${origin}" is not on the RP id ${doc.rp_id}`);
  }
  return { id: doc.rp_id, name: doc.rp_name ?? doc.rp_id, origins: doc.origins };
}

/** The relying party whose passkeys answer `caller`'s challenges; undefined when the policy names none. */
export function relyingPartyFor(
  policy: Pick<Policy, "relyingParties" | "defaultRelyingParty">,
  caller: string,
) {
  return policy.relyingParties.get(caller) ?? policy.defaultRelyingParty;
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
