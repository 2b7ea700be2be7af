import { z } from "zod";
import { methodNames } from "../domain/method.ts";
import { priorities } from "../domain/priority.ts";
import { operatorsSchema } from "./operators.ts";
import { callerName, dnsName, peerName } from "./peer-names.ts";

// The policy file's schema (YAML, validated with zod); policy.ts turns a valid document into a Policy.
export const seconds = z
  .number()
  .int()
  .min(0)
  .max(86_400 * 30);
const actionName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.:-]{0,127}$/, "must be lowercase letters, digits and . _ : -");

// A WebAuthn relying party (a calling service's web front end): its RP id and exact origins.
export const relyingPartySchema = z.strictObject({
  rp_id: dnsName,
  rp_name: z.string().min(1).max(64).optional(),
  origins: z.array(z.url({ protocol: /^https?$/ })).min(1),
});
const aaguid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "must be a lowercase UUID");
const methodSchema = z.strictObject({ acr: z.string(), amr: z.array(z.string()).min(1) });
const passkeySchema = z.strictObject({
  user_verification: z.enum(["required", "preferred"]).default("preferred"),
  device_bound: z.boolean().default(false),
  aaguids: z.array(aaguid).default([]),
});
// A rule of an action: a CEL condition and what it requires instead of the action's own fields.
const ruleSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "must be lowercase letters, digits, _ and -"),
  when: z.string().min(1),
  acr: z.string().optional(),
  max_age: seconds.optional(),
  methods: z.array(z.enum(methodNames)).min(1).optional(),
  grant_ttl: seconds.min(1).optional(),
  bind_transaction: z.boolean().optional(),
  passkey: passkeySchema.optional(),
});

// `calls` per `per` seconds, counted in fixed windows of `per` seconds.
const rateSchema = z.strictObject({
  calls: z.number().int().min(1).max(10_000_000),
  per: z.number().int().min(1).max(86_400),
});

export const policySchema = z.strictObject({
  levels: z.array(z.string().min(1)).min(1),
  // A deployment may offer only some methods. A passkey's amr come from its flags (hwk or swk,
  // user, mfa); `device_bound_acr` is the level a device-bound, user-verified one reaches.
  methods: z.strictObject({
    totp: methodSchema.optional(),
    recovery_code: methodSchema.optional(),
    passkey: z.strictObject({ acr: z.string(), device_bound_acr: z.string().optional() }).optional(),
  }),
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
      bind_transaction: z.boolean().default(false),
      passkey: passkeySchema.optional(),
      // Ordered: the first whose `when` holds sets the requirement; the action's fields are the default.
      rules: z.array(ruleSchema).max(16).default([]),
    }),
  ),
  // How long "seen before" facts (payees, devices, networks, the last step-up) are kept, in seconds.
  facts: z
    .strictObject({
      retention: z
        .number()
        .int()
        .min(86_400)
        .max(86_400 * 730),
    })
    .default({ retention: 86_400 * 180 }),
  // The relying party of callers that name none of their own.
  webauthn: relyingPartySchema.optional(),
  callers: z
    .record(
      callerName,
      z.strictObject({
        // SPIFFE IDs (URI SANs) or DNS names (DNS SANs) whose client certificates name this caller.
        peers: z.array(peerName).default([]),
        actions: z.array(z.union([z.literal("*"), actionName])).default([]),
        factors: z.enum(["none", "read", "manage"]).default("none"),
        subject_proof: z.enum(["optional", "required"]).default("optional"),
        webauthn: relyingPartySchema.optional(),
      }),
    )
    .optional(),
  // Who may call AdminService, with which scopes (policy/operators.ts); absent: nobody.
  operators: operatorsSchema,
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

/** A valid policy document, as zod parsed it. */
export type PolicyDocument = z.infer<typeof policySchema>;
