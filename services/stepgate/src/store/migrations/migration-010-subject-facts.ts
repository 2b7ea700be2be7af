import { Migration } from "@mikro-orm/migrations";

/**
 * "Seen before" facts of the policy's rule conditions (store/subject-facts.ts): one row per keyed
 * hash of (kind, subject, value), so a row tells nothing of the payee, device, network or subject
 * it stands for. `seen_at` is the latest approved step-up that showed it; rows older than the
 * policy's retention are pruned.
 */
export class Migration010SubjectFacts extends Migration {
  override name = "010-subject-facts";

  override up(): void {
    this.addSql("create table subject_facts (fact text primary key, seen_at timestamptz not null)");
    this.addSql("create index subject_facts_seen_at on subject_facts (seen_at)");
  }

  override down(): void {
    this.addSql("drop table subject_facts");
  }
}
