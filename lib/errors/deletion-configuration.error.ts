import { HttpStatus } from '@nestjs/common';
import { DeletionError } from './deletion.error.js';
import { DELETION_CONFIG_CODES, type DeletionConfigCode } from './error-codes.js';

/** Where in the configuration the problem is. */
export interface ConfigurationSubject {
  entity?: string;
  relation?: string;
  option?: string;
}

/**
 * A policy declaration or a module option that cannot work. Thrown at bootstrap, so the
 * application does not start with a policy that would misbehave at the first deletion.
 */
export class DeletionConfigurationError extends DeletionError {
  readonly code: DeletionConfigCode;
  readonly entity?: string;
  readonly relation?: string;
  readonly option?: string;
  /** For `DELETION_CONFIG_INVALID`: every problem found, each with its own code. */
  readonly errors: readonly DeletionConfigurationError[] = [];

  private constructor(code: DeletionConfigCode, message: string, subject: ConfigurationSubject) {
    super(code, message, HttpStatus.INTERNAL_SERVER_ERROR, { ...subject });
    this.code = code;
    Object.assign(this, subject);
  }

  static create(code: DeletionConfigCode, subject: ConfigurationSubject, problem: string, fix: string): DeletionConfigurationError {
    const where = [subject.entity, subject.relation].filter(Boolean).join('.') || subject.option || 'DeletionModule';
    return new DeletionConfigurationError(code, `${where}: ${problem} Fix: ${fix}`, subject);
  }

  /** Several findings at once, so a developer fixes them in one pass. */
  static many(errors: readonly DeletionConfigurationError[]): DeletionConfigurationError {
    if (errors.length === 1) {
      return errors[0]!;
    }
    const message = `${errors.length} deletion policy errors:\n${errors.map((e) => `  - [${e.code}] ${e.message}`).join('\n')}`;
    const error = new DeletionConfigurationError(DELETION_CONFIG_CODES.INVALID, message, {});
    Object.assign(error, { errors: [...errors] });
    return error;
  }
}
