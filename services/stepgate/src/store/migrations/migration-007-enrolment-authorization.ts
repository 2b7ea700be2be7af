import { Migration } from "@mikro-orm/migrations";

/**
 * What authorised a pending enrolment (JSON: a first factor's fresh sign-in, or the management
 * grant it spent), so its confirmation is checked against the subject's state at that moment. A
 * nullable column: pending rows from before it read as first-factor enrolments, the strictest case.
 */
export class Migration007EnrolmentAuthorization extends Migration {
  override name = "007-enrolment-authorization";

  override up(): void {
    this.addSql("alter table factors add column authorized_by text null");
  }

  override down(): void {
    this.addSql("alter table factors drop column authorized_by");
  }
}
