import { HttpException, HttpStatus } from '@nestjs/common';

/** The body every deletion error renders when it reaches a Nest controller. */
export interface DeletionErrorBody {
  statusCode: number;
  error: string;
  code: string;
  message: string;
  [detail: string]: unknown;
}

const STATUS_TEXT: Partial<Record<HttpStatus, string>> = {
  [HttpStatus.BAD_REQUEST]: 'Bad Request',
  [HttpStatus.NOT_FOUND]: 'Not Found',
  [HttpStatus.CONFLICT]: 'Conflict',
  [HttpStatus.INTERNAL_SERVER_ERROR]: 'Internal Server Error',
};

/**
 * Base of every error this module throws. Each carries a stable `code` and the entity, relation or
 * id involved. Being an `HttpException`, it reaches HTTP clients with the right status (409 for a
 * refused deletion, 404 for a missing target) and a JSON body, with no exception filter to install.
 */
export abstract class DeletionError extends HttpException {
  abstract readonly code: string;

  protected constructor(code: string, message: string, status: HttpStatus, details: Record<string, unknown> = {}) {
    super(
      { statusCode: status, error: STATUS_TEXT[status] ?? 'Error', code, message, ...(jsonSafe(details) as Record<string, unknown>) } satisfies DeletionErrorBody,
      status,
    );
    this.name = new.target.name;
  }

  override getResponse(): DeletionErrorBody {
    return super.getResponse() as DeletionErrorBody;
  }
}

/** The body goes out as JSON: a bigint key (a `BigIntType` key mapped to `bigint`) as its decimal string. */
function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value.toString();
  }
  if (Array.isArray(value)) {
    return value.map(jsonSafe);
  }
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}
