import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';

/**
 * A deletion reaches rows deeper than the deletion tree is unrolled (a cycle of policies through
 * several entities): their validators cannot all be checked, so the deletion is refused rather
 * than validated in part. Reaches HTTP as 409.
 */
export class DeletionValidationDepthError extends DeletionError {
  static readonly CODE = 'DELETION_VALIDATION_DEPTH_EXCEEDED';
  readonly code = DeletionValidationDepthError.CODE;

  private constructor(
    message: string,
    readonly entity: string,
    readonly path: string,
    readonly maxDepth: number,
  ) {
    super(DeletionValidationDepthError.CODE, message, HttpStatus.CONFLICT, { entity, path, maxDepth });
  }

  static create(entity: string, path: string, maxDepth: number): DeletionValidationDepthError {
    return new DeletionValidationDepthError(
      `Cannot validate this deletion: it reaches ${entity} rows at ${path}, more than ${maxDepth} relations deep through a cycle of ` +
        `policies over several entities, where their validators are not checked. Break the cycle with a set-based policy ` +
        `("deleteAll" or "deleteAllAsync") on one of its relations, or delete the deepest rows first.`,
      entity,
      path,
      maxDepth,
    );
  }
}
