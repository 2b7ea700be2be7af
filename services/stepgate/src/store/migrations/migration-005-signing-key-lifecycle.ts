import { Migration } from "@mikro-orm/migrations";

/**
 * Signing keys rotate: each key carries when it starts signing (`signs_from`) and, once it no longer
 * verifies anything, when it was retired (`retired_at`); every replica derives next, current,
 * previous and retired from these times and its clock (grants/signing-key-lifecycle.ts). A
 * `generation` number, unique, makes replicas that race to create the next key produce exactly one.
 * `active` stays for replicas of the previous release during a rolling upgrade: true on the fleet's
 * first key only, so none of them creates a key of its own.
 */
export class Migration005SigningKeyLifecycle extends Migration {
  override name = "005-signing-key-lifecycle";

  override up(): void {
    this.addSql("alter table signing_keys add column signs_from timestamptz null");
    this.addSql("alter table signing_keys add column retired_at timestamptz null");
    this.addSql("alter table signing_keys add column generation integer null");
    // Existing keys signed from their creation, in creation order.
    this.addSql(`update signing_keys s set signs_from = s.created_at, generation = n.generation
      from (select kid, row_number() over (order by created_at, kid) as generation from signing_keys) n
      where s.kid = n.kid`);
    this.addSql("alter table signing_keys alter column signs_from set not null");
    this.addSql("alter table signing_keys alter column generation set not null");
    this.addSql("create unique index signing_keys_one_per_generation on signing_keys (generation)");
  }

  override down(): void {
    this.addSql("drop index signing_keys_one_per_generation");
    this.addSql(
      "alter table signing_keys drop column generation, drop column retired_at, drop column signs_from",
    );
  }
}
