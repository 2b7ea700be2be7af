import { Migration } from "@mikro-orm/migrations";

/**
 * Every audit event carries the random id it got when it was recorded, unique, so an event
 * delivered twice (a batch redelivered from the Redis outbox after a crash) is stored once.
 * Nullable: rows written before this migration, and by replicas of the previous release during a
 * rolling upgrade, have none (a unique index admits any number of nulls). Adding a nullable column
 * without a default rewrites nothing.
 */
export class Migration003AuditEventIds extends Migration {
  override name = "003-audit-event-ids";

  override up(): void {
    this.addSql("alter table audit_events add column event_id text null");
    this.addSql("create unique index audit_events_event_id_unique on audit_events (event_id)");
  }

  override down(): void {
    this.addSql("drop index audit_events_event_id_unique");
    this.addSql("alter table audit_events drop column event_id");
  }
}
