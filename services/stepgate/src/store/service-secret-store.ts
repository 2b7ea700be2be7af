import type { Pg } from "./sql.ts";

/** Fleet-wide secrets, sealed by the caller, one per name. */
export interface ServiceSecretStore {
  /**
   * The sealed secret stored under `name`, storing `candidate` first when there is none. Replicas
   * that start together may each offer one; the primary key lets exactly one win, and all read it.
   */
  getOrCreate(name: string, candidate: { sealed: Buffer; keyId: string }): Promise<Buffer>;
}

export function createServiceSecretStore(pg: Pg): ServiceSecretStore {
  const run = pg.sql;
  return {
    async getOrCreate(name, candidate) {
      await run(
        `insert into service_secrets (name, sealed, key_id, created_at) values (?, ?, ?, now())
         on conflict (name) do nothing`,
        [name, candidate.sealed, candidate.keyId],
      );
      const rows = await run<{ sealed: Buffer }>("select sealed from service_secrets where name = ?", [name]);
      const row = rows[0];
      if (!row) throw new Error(`service secret "${name}" is missing after creation`);
      return row.sealed;
    },
  };
}
