// pnpm bench:validation: what checking a request against the rules in its proto costs, per request
// type, in µs of CPU on this process's core: the service's own interceptor (validateRequests)
// through the bridge's interceptor chain, minus the same chain without it. Typical requests, each
// valid (the path every served call takes); best of several rounds, since a shared machine only
// ever adds time.
import { create, type DescMessage, type DescMethodUnary } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { FactorService, StepUpService } from "@stepgate/api";
import { withServerInterceptors } from "@stepgate/grpc-bridge";
import { validateRequests } from "@stepgate/server/rpc/validate-requests";
import { handlerContextFor } from "@stepgate/testkit/handler-context";
import { table } from "./text-table.ts";

const rounds = 8;
const callsPerRound = 5000;

const typical: [DescMethodUnary, Record<string, unknown>][] = [
  [
    StepUpService.method.stepUp,
    {
      subject: "user-123456",
      sessionId: "sess-abcdef-123456",
      action: "payments.transfer",
      context: { ip: "192.0.2.1" },
    },
  ],
  [
    StepUpService.method.verify,
    {
      challengeId: "A".repeat(22),
      subject: "user-123456",
      sessionId: "sess-abcdef-123456",
      action: "payments.transfer",
      idempotencyKey: "key-123456789",
      proof: { kind: { case: "totpCode", value: "123456" } },
    },
  ],
  // A grant is about 600 bytes.
  [StepUpService.method.checkGrant, { token: "x".repeat(600), action: "payments.transfer" }],
  [StepUpService.method.getJwks, {}],
  [
    FactorService.method.enrollTotp,
    { subject: "user-123456", label: "Phone", accountName: "alice@example.com" },
  ],
];

/** Best µs per call of `method` behind `interceptors`, over `rounds` rounds. */
async function costOf(method: DescMethodUnary, init: Record<string, unknown>, interceptors: Interceptor[]) {
  // A pass-through interceptor keeps the chain (request and response objects) in both runs.
  const call = withServerInterceptors(method, () => ({}), [(next) => (req) => next(req), ...interceptors]);
  const message = create(method.input as DescMessage, init);
  const ctx = handlerContextFor(method);
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    for (let i = 0; i < callsPerRound; i++) await call(message, ctx);
    best = Math.min(best, ((performance.now() - started) * 1000) / callsPerRound);
  }
  return best;
}

const validate = validateRequests([StepUpService, FactorService]);
const rows = [["request", "chain µs", "chain + rules µs", "rules µs"]];
for (const [method, init] of typical) {
  const bare = await costOf(method, init, []);
  const checked = await costOf(method, init, [validate]);
  rows.push([method.name, bare.toFixed(1), checked.toFixed(1), (checked - bare).toFixed(1)]);
}
console.log(
  `request rules (protovalidate), best of ${rounds} rounds of ${callsPerRound} calls\n${table(rows)}`,
);
