import { BadRequestException, Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';

const WHOLE_NUMBER = /^(0|[1-9][0-9]*)$/;

/**
 * A whole number within `[min, max]` from a query parameter, or 400 with `code: 'INVALID_PARAMETER'`.
 * A repeated parameter (`?limit=1&limit=2`, an array) is refused rather than guessed at.
 */
@Injectable()
export class ParseBoundedIntPipe implements PipeTransform<unknown, number> {
  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {}

  transform(value: unknown, metadata: ArgumentMetadata): number {
    if (typeof value === 'string' && WHOLE_NUMBER.test(value) && Number(value) >= this.min && Number(value) <= this.max) {
      return Number(value);
    }
    throw new BadRequestException({
      statusCode: 400,
      error: 'Bad Request',
      code: 'INVALID_PARAMETER',
      message: `${metadata.data ?? 'parameter'} must be a whole number from ${this.min} to ${this.max}; got ${JSON.stringify(value) ?? 'nothing'}.`,
    });
  }
}
