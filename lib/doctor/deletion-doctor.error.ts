import { HttpStatus } from '@nestjs/common';
import { DeletionError } from '../errors/deletion.error.js';
import { formatFinding, type DoctorFinding } from './doctor-finding.js';

/**
 * The doctor found declared policies that the database schema would defeat or block (DESIGN 2.2).
 * Thrown at bootstrap in the default `doctor: 'error'` mode, so the application does not start;
 * `findings` holds every error finding, and the message lists them with their fixes.
 */
export class DeletionDoctorError extends DeletionError {
  static readonly CODE = 'DELETION_DOCTOR_FAILED';
  readonly code = DeletionDoctorError.CODE;

  private constructor(
    message: string,
    readonly findings: readonly DoctorFinding[],
  ) {
    super(DeletionDoctorError.CODE, message, HttpStatus.INTERNAL_SERVER_ERROR, { findings });
  }

  static create(findings: readonly DoctorFinding[]): DeletionDoctorError {
    const what = findings.length === 1 ? 'a deletion policy conflicts' : `${findings.length} deletion policies conflict`;
    const message =
      `The deletion doctor found that ${what} with the database schema:\n` +
      findings.map((finding) => `  - ${formatFinding(finding)}`).join('\n') +
      `\nFix the schema or the policies; DeletionModule's option doctor: 'warn' logs these findings and starts anyway.`;
    return new DeletionDoctorError(message, findings);
  }
}
