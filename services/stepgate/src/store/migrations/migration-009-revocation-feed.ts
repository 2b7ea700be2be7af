import { Migration } from "@mikro-orm/migrations";

/**
 * The revocation feed's source (store/revocation-log.ts): one row per revocation, in commit order
 * by `seq` (the feed's cursor), kept until no grant it concerns can be valid (`expires_at`).
 * `event_id` makes a revocation stored twice (a deferred one delivered again) one row.
 */
export class Migration009RevocationFeed extends Migration {
  override name = "009-revocation-feed";

  override up(): void {
    this.addSql(`create table revocation_events (
      seq bigserial primary key,
      event_id text not null unique,
      kind text not null check (kind in ('session_ended', 'factor_ended', 'grant_consumed', 'key_retired')),
      target text not null,
      revoked_at timestamptz not null,
      expires_at timestamptz not null
    )`);
    this.addSql("create index revocation_events_expiry on revocation_events (expires_at)");
  }

  override down(): void {
    this.addSql("drop table revocation_events");
  }
}
