const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  // PostgreSQL: admin shutdown, crash shutdown, cannot connect now, statement timeout.
  "57P01",
  "57P02",
  "57P03",
  "57014",
  // PostgreSQL: read-only transaction: the endpoint reached a standby (before its promotion) or a
  // demoted primary; a new connection reaches the primary once the endpoint follows it.
  "25006",
]);
const unavailableNames = new Set(["ConnectionException", "MaxRetriesPerRequestError"]);
// READONLY: Redis answered from a replica (a demoted primary); the client reconnects via Sentinel.
const unavailableMessages =
  /^READONLY |connection is closed|connection terminated|stream isn't writeable|connect ECONNREFUSED|timed out|timeout exceeded|query read timeout|client has encountered a connection error|cannot use a pool after calling end/i;

/**
 * True for errors that mean PostgreSQL or Redis did not answer (refused, reset, timed out, shut
 * down, unreachable), as opposed to an answer the store gave (a constraint, a syntax error). Only
 * these count against a dependency's circuit breaker. Walks `cause` up to 5 levels.
 */
export function isInfrastructureFailure(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = String((e as { code?: unknown }).code ?? "");
    if (unavailableCodes.has(code) || code.startsWith("08")) return true;
    if (unavailableNames.has(e.name) || unavailableMessages.test(e.message)) return true;
  }
  return false;
}
