import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';

/**
 * `destroy()` or `plan()` was given something that is not a primary-key value of the entity: an
 * object (a filter such as `{}` or `{ $gt: 0 }`), an array for a single-column key, `NaN`, an empty
 * string, or a string that is not a value of the key's type. Nothing is read or deleted. Reaches
 * HTTP clients as 400.
 */
export class DeletionInvalidIdError extends DeletionError {
  static readonly CODE = 'DELETION_INVALID_ID';
  readonly code = DeletionInvalidIdError.CODE;

  private constructor(
    message: string,
    readonly entity: string,
    readonly id: unknown,
  ) {
    super(DeletionInvalidIdError.CODE, message, HttpStatus.BAD_REQUEST, { entity, id: printable(id) });
  }

  /** `expected`: what a key of this entity looks like, e.g. "an integer" or "a uuid". */
  static create(entity: string, id: unknown, expected: string): DeletionInvalidIdError {
    return new DeletionInvalidIdError(
      `${describe(id)} is not a primary key of ${entity}: pass ${expected}, the key's value (never a filter).`,
      entity,
      id,
    );
  }
}

function describe(id: unknown): string {
  if (typeof id === 'string') {
    return JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id);
  }
  if (typeof id === 'bigint' || typeof id === 'number' || typeof id === 'boolean' || id === null || id === undefined) {
    return String(id);
  }
  return Array.isArray(id) ? 'an array' : `an ${typeof id}`;
}

/** The id as a JSON body can carry it (no bigint, no functions). */
function printable(id: unknown): unknown {
  if (typeof id === 'bigint') {
    return id.toString();
  }
  return typeof id === 'number' || typeof id === 'string' || typeof id === 'boolean' || id === null ? id : describe(id);
}
