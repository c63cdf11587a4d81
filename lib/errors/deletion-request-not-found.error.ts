import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';

/** `status()` or `retry()` was given an id that names no deletion request. Reaches HTTP as 404. */
export class DeletionRequestNotFoundError extends DeletionError {
  static readonly CODE = 'DELETION_REQUEST_NOT_FOUND';
  readonly code = DeletionRequestNotFoundError.CODE;

  private constructor(
    message: string,
    readonly requestId: unknown,
  ) {
    super(DeletionRequestNotFoundError.CODE, message, HttpStatus.NOT_FOUND, { requestId });
  }

  static create(requestId: unknown): DeletionRequestNotFoundError {
    return new DeletionRequestNotFoundError(`No deletion request has the id ${JSON.stringify(requestId)}.`, requestId);
  }
}
