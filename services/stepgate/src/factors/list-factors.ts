import type { Factor } from "../domain/factor.ts";
import type { FactorStore } from "../store/factor-store.ts";

/** The subject's factors, pending and active, oldest first; never fails for an unknown subject (empty list). */
export type ListFactors = (subject: string) => Promise<Factor[]>;

export interface ListFactorsDeps {
  factors: Pick<FactorStore, "list">;
}

export function createListFactors({ factors }: ListFactorsDeps): ListFactors {
  return (subject) => factors.list(subject);
}
