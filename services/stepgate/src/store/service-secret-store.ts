import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { Pg } from "./sql.ts";
import type { StartupCopies } from "./startup-copies.ts";

/** Fleet-wide secrets, sealed by the caller, one per name. */
export interface ServiceSecretStore {
  /**
   * The sealed secret stored under `name`, storing `candidate` first when there is none. Replicas
   * that start together may each offer one; the primary key lets exactly one win, and all read it.
   * While PostgreSQL is down, the startup copy the last start saved; fails with the
   * DependencyUnavailableError when there is none.
   */
  getOrCreate(name: string, candidate: { sealed: Buffer; keyId: string }): Promise<Buffer>;
}

export function createServiceSecretStore(pg: Pg, copies: StartupCopies): ServiceSecretStore {
  const run = pg.sql;
  const fromPostgres = async (name: string, candidate: { sealed: Buffer; keyId: string }) => {
    await run(
      `insert into service_secrets (name, sealed, key_id, created_at) values ($1, $2, $3, now())
         on conflict (name) do nothing`,
      [name, candidate.sealed, candidate.keyId],
    );
    const rows = await run<{ sealed: Buffer }>("select sealed from service_secrets where name = $1", [name]);
    const row = rows[0];
    if (!row) throw new Error(`service secret "${name}" is missing after creation`);
    return row.sealed;
  };
  return {
    async getOrCreate(name, candidate) {
      const copyName = `secret:${name}`;
      try {
        const sealed = await fromPostgres(name, candidate);
        await copies.save(copyName, sealed.toString("base64")).catch(() => {});
        return sealed;
      } catch (error) {
        if (!(error instanceof DependencyUnavailableError)) throw error;
        const copy = await copies.load(copyName).catch(() => null);
        if (copy === null) throw error;
        return Buffer.from(copy, "base64");
      }
    },
  };
}
