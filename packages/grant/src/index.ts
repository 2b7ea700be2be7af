export { type GrantClaims, grantType } from "./grant-claims.ts";
export { GrantError, type GrantErrorReason } from "./grant-error.ts";
export { createGrantSigner, type GrantSigner } from "./grant-signer.ts";
export {
  createGrantVerifier,
  type GrantExpectations,
  type GrantVerifier,
  type GrantVerifierOptions,
} from "./grant-verifier.ts";
export { type Jwk, publicJwk } from "./jwk.ts";
export {
  createRevocationSet,
  type Revocation,
  type RevocationCheck,
  type RevocationKind,
  type RevocationSet,
  sessionRevocationKey,
} from "./revocation-set.ts";
export { isNumericDate, latestNumericDate, type TimeClaims, timeClaimFault } from "./time-claims.ts";
export {
  canonicalTransaction,
  normalizeTransaction,
  type TransactionDetails,
  TransactionError,
  type TransactionRefusal,
  transactionDigest,
  transactionSummary,
} from "./transaction.ts";
