import { Migration } from "@mikro-orm/migrations";

/**
 * A version per subject, raised by every change to what the subject can answer challenges with
 * (a factor confirmed or removed, recovery codes replaced), so a cached copy of the factors can be
 * told apart from a newer one and a removed factor never comes back from a cache.
 */
export class Migration004SubjectVersions extends Migration {
  override name = "004-subject-versions";

  override up(): void {
    this.addSql(`create table subject_versions (
      subject text primary key,
      version bigint not null,
      updated_at timestamptz not null
    )`);
    this.addSql("create index subject_versions_updated_at_index on subject_versions (updated_at)");
  }
}
