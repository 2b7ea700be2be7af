// pnpm bench:transaction: what binding a grant to a transaction costs a call, in µs of CPU on this
// process's core: the normal form, its RFC 8785 JSON and digest, and the summary, as StepUp does once
// and Verify and CheckGrant each do once (stepup/transaction-binding.ts). Best of several rounds,
// since a shared machine only ever adds time. The transaction field's request rules are in
// bench:validation's figures; compare the sum with a Verify's server CPU from bench:passkey or
// bench:latency for the share binding adds.
import { transactionDigest, transactionSummary } from "@stepgate/grant";
import { table } from "./text-table.ts";

const rounds = 8;
const callsPerRound = 20_000;

const cases: [string, Record<string, string>][] = [
  [
    "ASCII payee",
    { amount: "1250.00", currency: "EUR", payee: "ACME Trading Ltd", resource: "invoice-2026-0042" },
  ],
  ["accented payee (NFC)", { amount: "99.9", currency: "CHF", payee: "Müller & Söhne GmbH" }],
  ["CJK payee", { amount: "120000", currency: "JPY", payee: "山田商事 株式会社" }],
];

/** The best per-call µs of `work` over the rounds. */
function bestMicros(work: () => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < rounds; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < callsPerRound; i++) work();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / callsPerRound);
  }
  return best;
}

const rows = cases.map(([name, details]) => {
  const digest = bestMicros(() => transactionDigest(details));
  const both = bestMicros(() => {
    transactionDigest(details);
    transactionSummary(details);
  });
  return [name, digest.toFixed(1), both.toFixed(1)];
});
console.log(
  table([["transaction", "digest µs (Verify, CheckGrant)", "digest and summary µs (StepUp)"], ...rows]),
);
