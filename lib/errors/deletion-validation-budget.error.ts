import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';

/**
 * Instance validators would have to load more rows than `validation.maxInstances`: the deletion is
 * refused rather than validated partly. Reaches HTTP as 409.
 */
export class DeletionValidationBudgetError extends DeletionError {
  static readonly CODE = 'DELETION_VALIDATION_BUDGET_EXCEEDED';
  readonly code = DeletionValidationBudgetError.CODE;

  private constructor(
    message: string,
    readonly entity: string,
    readonly path: string,
    readonly maxInstances: number,
  ) {
    super(DeletionValidationBudgetError.CODE, message, HttpStatus.CONFLICT, { entity, path, maxInstances });
  }

  static create(entity: string, path: string, maxInstances: number): DeletionValidationBudgetError {
    return new DeletionValidationBudgetError(
      `Cannot validate this deletion: the instance validators of ${entity} (at ${path}) would load more than ` +
        `validation.maxInstances = ${maxInstances} rows. Express the rule as a set-based validator, ` +
        `@ValidateBeforeDestroy({ where, message }) on ${entity}, which costs one query whatever the row count, ` +
        `or raise validation.maxInstances.`,
      entity,
      path,
      maxInstances,
    );
  }
}
