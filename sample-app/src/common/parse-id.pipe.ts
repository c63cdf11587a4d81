import { BadRequestException, Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';

/** The sample's primary keys are PostgreSQL `serial` columns: 1 to 2^31 - 1. */
export const MAX_ID = 2_147_483_647;

/** Digits only, no sign, no leading zero: one spelling per id. */
const CANONICAL_ID = /^[1-9][0-9]*$/;

/**
 * Turns a route parameter into a primary key, or answers 400 with `code: 'INVALID_ID'`.
 * Stricter than `ParseIntPipe`, which lets `99999999999999999999` through to PostgreSQL (an
 * `integer` overflow there, so a 500) and accepts `-1` or `007`. Anything but a string (an array
 * from a query string, say) is refused too.
 */
@Injectable()
export class ParseIdPipe implements PipeTransform<unknown, number> {
  transform(value: unknown, metadata: ArgumentMetadata): number {
    if (typeof value === 'string' && CANONICAL_ID.test(value) && value.length <= String(MAX_ID).length && Number(value) <= MAX_ID) {
      return Number(value);
    }
    const name = metadata.data ?? 'id';
    throw new BadRequestException({
      statusCode: 400,
      error: 'Bad Request',
      code: 'INVALID_ID',
      message: `${name} must be a whole number from 1 to ${MAX_ID}; got ${JSON.stringify(value) ?? 'nothing'}.`,
    });
  }
}
