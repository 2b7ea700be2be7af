// The payments example by hand, against `pnpm dev`: `node examples/payments/src/main.ts`, then open
// http://localhost:8088 (the origin services/stepgate/policy/example.yaml allows for passkeys).
// STEPGATE_TARGET (default: the three `pnpm dev` replicas), PORT (8088), STEPGATE_CALLER (payments).
import { startPaymentsWeb } from "./web-server.ts";

const web = await startPaymentsWeb({
  port: Number(process.env.PORT ?? 8088),
  stepgateTargets: [process.env.STEPGATE_TARGET ?? "ipv4:127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053"],
  caller: process.env.STEPGATE_CALLER ?? "payments",
  // One JSON line per API call; bodies (credentials) and grants are never logged.
  log: (entry) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`),
  onApproved: (a) =>
    process.stdout.write(
      `${JSON.stringify({ msg: "transfer approved", transferId: a.transferId, acr: a.claims.acr, amr: a.claims.amr })}\n`,
    ),
});
process.stdout.write(`payments example on ${web.url} (open it in a browser with a passkey)\n`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void web.close().then(() => process.exit(0));
  });
}
