import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';

/**
 * A queued cascade walked the same relation again and again without finishing: children keep
 * reappearing under a parent being deleted (inserted as fast as they are removed, or a shape the
 * cascade cannot empty). The request fails visibly instead of spinning; `retry()` resumes it.
 */
export class DeletionStalledError extends DeletionError {
  static readonly CODE = 'DELETION_CASCADE_STALLED';
  readonly code = DeletionStalledError.CODE;

  private constructor(
    message: string,
    readonly path: string,
    readonly walks: number,
  ) {
    super(DeletionStalledError.CODE, message, HttpStatus.CONFLICT, { path, walks });
  }

  static create(path: string, walks: number): DeletionStalledError {
    return new DeletionStalledError(
      `The cascade walked ${path} ${walks} times and children are still there: something keeps adding rows under the ` +
        `parent being deleted, or they cannot be removed by this relation. Stop what inserts them, then retry the request.`,
      path,
      walks,
    );
  }
}
