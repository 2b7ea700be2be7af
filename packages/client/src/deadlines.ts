/**
 * Default deadlines per method, in ms, for calls that set none. Verify hashes recovery codes
 * (scrypt) and so gets the most; every figure covers retries too, since a gRPC deadline spans
 * all attempts of a call.
 */
export const defaultDeadlines: Record<string, number> = {
  StepUp: 3000,
  Verify: 5000,
  CheckGrant: 2000,
  EndSession: 3000,
  GetJwks: 2000,
  EnrollTotp: 5000,
  ConfirmTotp: 5000,
  CreateRecoveryCodes: 10_000,
  ListFactors: 3000,
  RemoveFactor: 5000,
};
