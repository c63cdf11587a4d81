import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';
import { formatIds } from './format-id.js';

/** One row a validator refuses to delete. */
export interface DeletionBlocker {
  entity: string;
  id: unknown;
  /** The relation path through which the deletion reaches this row, e.g. `Author.books`. */
  path: string;
  reason: string;
}

/**
 * A `@ValidateBeforeDestroy()` validator refused: nothing was deleted, no request written, no job
 * added. Carries a capped sample of the blockers and their total count; reaches HTTP as 409.
 */
export class DeletionBlockedError extends DeletionError {
  static readonly CODE = 'DELETION_BLOCKED';
  readonly code = DeletionBlockedError.CODE;

  private constructor(
    message: string,
    readonly entity: string,
    readonly id: unknown,
    readonly blockers: DeletionBlocker[],
    readonly total: number,
  ) {
    super(DeletionBlockedError.CODE, message, HttpStatus.CONFLICT, { entity, id, blockers, total });
  }

  static create(args: { entity: string; id: unknown; blockers: DeletionBlocker[]; total: number }): DeletionBlockedError {
    const first = args.blockers[0];
    const more = args.total > 1 ? ` (and ${args.total - 1} more)` : '';
    const message = `Cannot delete ${args.entity} ${formatIds(args.id)}: ${first ? `${first.entity} ${formatIds(first.id)} at ${first.path}: ${first.reason}` : 'a validator refused'}${more}.`;
    return new DeletionBlockedError(message, args.entity, args.id, args.blockers, args.total);
  }
}
