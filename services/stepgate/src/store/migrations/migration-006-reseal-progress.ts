import { Migration } from "@mikro-orm/migrations";

/**
 * Where the re-seal job (keys/reseal.ts) stands in each table that holds sealed values: the key
 * it moves rows to, the last row it passed (in primary-key order) and how many rows it re-sealed,
 * so a job that was stopped resumes where it stopped. A new table: nothing existing is rewritten.
 */
export class Migration006ResealProgress extends Migration {
  override name = "006-reseal-progress";

  override up(): void {
    this.addSql(`create table reseal_progress (
      target text primary key,
      key_id text not null,
      after text null,
      complete boolean not null,
      resealed bigint not null,
      updated_at timestamptz not null
    )`);
  }

  override down(): void {
    this.addSql("drop table reseal_progress");
  }
}
