import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';
import { formatIds } from './format-id.js';

/** `DeletionService` was asked to delete a row that does not exist. Reaches HTTP clients as 404. */
export class DeletionTargetNotFoundError extends DeletionError {
  static readonly CODE = 'DELETION_TARGET_NOT_FOUND';
  readonly code = DeletionTargetNotFoundError.CODE;

  private constructor(
    message: string,
    readonly entity: string,
    readonly id: unknown,
  ) {
    super(DeletionTargetNotFoundError.CODE, message, HttpStatus.NOT_FOUND, { entity, id });
  }

  static create(entity: string, id: unknown): DeletionTargetNotFoundError {
    return new DeletionTargetNotFoundError(`${entity} ${formatIds(id)} does not exist.`, entity, id);
  }
}
