import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';
import { formatIds } from './format-id.js';

/**
 * A `restrict` policy refused the deletion because children exist. Nothing was deleted: the whole
 * deletion's transaction rolls back. Reaches HTTP clients as 409 with `entity`, `id`, `relation`,
 * `childEntity` and `count` in the body.
 */
export class DeletionRestrictedError extends DeletionError {
  static readonly CODE = 'DELETION_RESTRICTED';
  readonly code = DeletionRestrictedError.CODE;

  private constructor(
    message: string,
    readonly entity: string,
    readonly id: unknown,
    readonly relation: string,
    readonly childEntity: string,
    readonly count: number,
  ) {
    super(DeletionRestrictedError.CODE, message, HttpStatus.CONFLICT, { entity, id, relation, childEntity, count });
  }

  static create(args: { entity: string; id: unknown; relation: string; childEntity: string; count: number }): DeletionRestrictedError {
    const noun = args.count === 1 ? 'row' : 'rows';
    const message =
      `Cannot delete ${args.entity} ${formatIds(args.id)}: its relation "${args.relation}" is restricted and ` +
      `still has ${args.count} ${args.childEntity} ${noun}. Delete or reassign them first.`;
    return new DeletionRestrictedError(message, args.entity, args.id, args.relation, args.childEntity, args.count);
  }
}
