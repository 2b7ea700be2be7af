// The payments example, against `pnpm dev`: `pnpm example:payments`, then open http://localhost:8088
// (the origin services/stepgate/policy/example.yaml allows for passkeys). Starts TransferService
// (gRPC, Transfer behind @stepgate/guard, on TRANSFER_PORT, default 8089) and the page.
// STEPGATE_TARGET (default: the three `pnpm dev` replicas), PORT (8088), STEPGATE_CALLER (payments).
import { startPaymentsWeb } from "./web-server.ts";

const line = (entry: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);

const web = await startPaymentsWeb({
  port: Number(process.env.PORT ?? 8088),
  transferPort: Number(process.env.TRANSFER_PORT ?? 8089),
  stepgateTargets: [process.env.STEPGATE_TARGET ?? "ipv4:127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053"],
  caller: process.env.STEPGATE_CALLER ?? "payments",
  // One line per API call and per guard decision; bodies, codes, credentials and grants never.
  log: line,
  onDecision: ({ error, ...d }) =>
    line({ msg: "guard", ...d, ...(error ? { error: error.rawMessage } : {}) }),
  onTransfer: (t) =>
    line({
      msg: "transfer executed",
      transferId: t.transferId,
      action: t.action,
      acr: t.grant.acr,
      amr: t.grant.amr,
    }),
});
process.stdout.write(
  `payments example on ${web.url} (TransferService on 127.0.0.1:${web.transferPort}); open it in a browser\n`,
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void web.close().then(() => process.exit(0));
  });
}
