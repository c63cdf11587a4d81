import { BadRequestException } from '@nestjs/common';

/** What `POST /authors` creates, once validated. */
export interface CreateAuthorInput {
  name: string;
  books: number;
  reviewsPerBook: number;
  followers: number;
  articles: number;
  contractEndsAt: Date | null;
}

/** Bounds that keep one request from filling the disk: a benchmark builds big authors in steps. */
export const CREATE_AUTHOR_LIMITS = { books: 1_000_000, reviewsPerBook: 1_000, reviews: 10_000_000, followers: 1_000_000, articles: 10_000 } as const;

/**
 * Body of `POST /authors`, validated by hand to keep the sample's dependencies small. Every count
 * defaults to 0; `contractEndsAt` is an ISO date (a future one makes the author undeletable).
 *
 * @example { "name": "Ann", "books": 1000, "reviewsPerBook": 3, "followers": 50000, "articles": 2 }
 */
export class CreateAuthorDto {
  name!: string;
  books?: number;
  reviewsPerBook?: number;
  followers?: number;
  articles?: number;
  contractEndsAt?: string | null;

  static parse(body: unknown): CreateAuthorInput {
    const input = (typeof body === 'object' && body !== null ? body : {}) as Partial<Record<keyof CreateAuthorDto, unknown>>;
    if (typeof input.name !== 'string' || input.name.trim().length === 0 || input.name.length > 200) {
      throw invalid('name must be a non-empty string of at most 200 characters');
    }
    const books = count(input.books, 'books', CREATE_AUTHOR_LIMITS.books);
    const reviewsPerBook = count(input.reviewsPerBook, 'reviewsPerBook', CREATE_AUTHOR_LIMITS.reviewsPerBook);
    if (books * reviewsPerBook > CREATE_AUTHOR_LIMITS.reviews) {
      throw invalid(`books × reviewsPerBook must be at most ${CREATE_AUTHOR_LIMITS.reviews}; create several authors instead`);
    }
    return {
      name: input.name,
      books,
      reviewsPerBook,
      followers: count(input.followers, 'followers', CREATE_AUTHOR_LIMITS.followers),
      articles: count(input.articles, 'articles', CREATE_AUTHOR_LIMITS.articles),
      contractEndsAt: date(input.contractEndsAt, 'contractEndsAt'),
    };
  }
}

function count(value: unknown, field: string, max: number): number {
  const n = value ?? 0;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) {
    throw invalid(`${field} must be an integer from 0 to ${max}`);
  }
  return n;
}

function date(value: unknown, field: string): Date | null {
  if (value === undefined || value === null) {
    return null;
  }
  const parsed = typeof value === 'string' ? new Date(value) : undefined;
  if (!parsed || Number.isNaN(parsed.getTime())) {
    throw invalid(`${field} must be an ISO 8601 date, e.g. "2030-01-01T00:00:00Z"`);
  }
  return parsed;
}

function invalid(message: string): BadRequestException {
  return new BadRequestException({ statusCode: 400, error: 'Bad Request', code: 'INVALID_AUTHOR', message });
}
