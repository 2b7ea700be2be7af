import { create, createRegistry, type DescMethod, type DescService } from "@bufbuild/protobuf";
import type { Path } from "@bufbuild/protobuf/reflect";
import { createValidator, type Violation } from "@bufbuild/protovalidate";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { BadRequestSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { file_stepgate_v1_rules } from "@stepgate/api/gen/stepgate/v1/rules_pb";

/**
 * The interceptor that checks every request against the rules its proto declares before the
 * handler runs: protovalidate (`buf.validate` annotations) with Stepgate's own
 * predefined rules (proto/stepgate/v1/rules.proto). A request that breaks any fails
 * INVALID_ARGUMENT "invalid request: <field> <description>; ..." with a google.rpc.BadRequest
 * naming each field once (its first violation), in the order the proto declares them, e.g.
 * `subject` "is required", `context["ip"]` "must be at most 256 bytes", `proof.totp_code` "must
 * be six digits". Rules that need state (a challenge exists, a grant is fresh) are the use
 * cases'. A rule that cannot be compiled or evaluated is a server bug: INTERNAL, logged.
 * The rules of every request of `services` are compiled here, once, so no first call after a
 * start waits for it (about 90 ms for both services); other messages compile on first use.
 */
export function validateRequests(services: readonly DescService[] = []): Interceptor {
  const check = createRequestCheck(services);
  return (next) => (req) => {
    if (req.stream) return next(req);
    check(req.method, req.message);
    return next(req);
  };
}

/** Checks one request message as `validateRequests` does; throws its INVALID_ARGUMENT. For streams. */
export type RequestCheck = (method: DescMethod, message: unknown) => void;

/** The check `validateRequests` runs, with the rules of every request of `services` compiled now. */
export function createRequestCheck(services: readonly DescService[] = []): RequestCheck {
  const validator = createValidator({
    registry: createRegistry(file_stepgate_v1_rules),
    regexMatch: schemaPatternMatch(),
  });
  for (const method of services.flatMap((service) => service.methods)) {
    validator.validate(method.input, create(method.input));
  }
  return (method, message) => {
    const result = validator.validate(method.input, message as never);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw result.error;
    throw invalidRequest(result.violations);
  };
}

/**
 * Patterns run on V8's RegExp, compiled once each, instead of protovalidate's default RE2 port:
 * a long token's check costs about half. RE2's linear-time guarantee protects against patterns
 * from untrusted schemas; these come only from Stepgate's own protos (proto/stepgate/v1/rules.proto),
 * anchored character classes with bounded repeats that cannot backtrack badly. So they must also
 * be valid JavaScript patterns: no RE2-only syntax such as `(?i)`.
 */
function schemaPatternMatch(): (pattern: string, value: string) => boolean {
  const compiled = new Map<string, RegExp>();
  return (pattern, value) => {
    let regex = compiled.get(pattern);
    if (regex === undefined) {
      regex = new RegExp(pattern, "u");
      compiled.set(pattern, regex);
    }
    return regex.test(value);
  };
}

function invalidRequest(violations: readonly Violation[]): ConnectError {
  const byField = new Map<string, string>();
  for (const violation of violations) {
    const field = fieldName(violation.field);
    // One description per field, the first, as a person fixing the request reads them.
    if (!byField.has(field)) byField.set(field, violation.message.replace(/^value /, ""));
  }
  const fieldViolations = [...byField].map(([field, description]) => ({ field, description }));
  const summary = fieldViolations.map((v) => `${v.field} ${v.description}`).join("; ");
  return new ConnectError(`invalid request: ${summary}`, Code.InvalidArgument, undefined, [
    { desc: BadRequestSchema, value: { fieldViolations } },
  ]);
}

/**
 * A violation's field as the proto names it: `proof.totp_code`, `context["ip"]`. A map key is
 * cut to 64 characters and JSON-quoted, so no control character and no oversized key reaches the
 * message, the logs or the audit trail.
 */
function fieldName(path: Path): string {
  let name = "";
  for (const element of path) {
    if (element.kind === "field" || element.kind === "oneof") {
      name += name === "" ? element.name : `.${element.name}`;
    } else if (element.kind === "map_sub") {
      const key = typeof element.key === "string" ? JSON.stringify(element.key.slice(0, 64)) : element.key;
      name += `[${String(key)}]`;
    } else if (element.kind === "list_sub") {
      name += `[${element.index}]`;
    } else {
      name += `[${element.typeName}]`;
    }
  }
  return name;
}
