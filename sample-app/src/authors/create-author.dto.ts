import { BadRequestException } from '@nestjs/common';

/** Body of POST /authors; validated by hand to keep the sample's dependencies small. */
export class CreateAuthorDto {
  name!: string;
  books?: number;
  reviewsPerBook?: number;

  static parse(body: unknown): { name: string; books: number; reviewsPerBook: number } {
    const input = (body ?? {}) as Partial<CreateAuthorDto>;
    if (typeof input.name !== 'string' || input.name.length === 0) {
      throw new BadRequestException('name must be a non-empty string');
    }
    const count = (value: unknown, field: string, max: number) => {
      const n = value === undefined ? 0 : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) {
        throw new BadRequestException(`${field} must be an integer between 0 and ${max}`);
      }
      return n;
    };
    return { name: input.name, books: count(input.books, 'books', 1_000_000), reviewsPerBook: count(input.reviewsPerBook, 'reviewsPerBook', 1000) };
  }
}
