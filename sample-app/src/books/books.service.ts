import { EntityManager } from '@mikro-orm/postgresql';
import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { DeletionService, type DeletionReceipt } from '../../../lib/index.js';
import { Book } from './book.entity.js';
import type { BookSummary } from './book.views.js';
import { Review } from './review.entity.js';

@Injectable()
export class BooksService {
  constructor(
    @Inject(EntityManager) private readonly em: EntityManager,
    @Inject(DeletionService) private readonly deletions: DeletionService,
  ) {}

  /** @throws NotFoundException when no book has this id. */
  async summary(id: number): Promise<BookSummary> {
    const em = this.em.fork();
    const book = await em.findOne(Book, id);
    if (!book) {
      throw notFound(id);
    }
    const reviews = await em.count(Review, { book: id });
    return { id, title: book.title, authorId: book.author.id, legalHold: book.legalHold, reviews };
  }

  /** Places or lifts a legal hold, which the set-based validator on `Book` enforces. */
  async setLegalHold(id: number, legalHold: boolean): Promise<void> {
    const updated = await this.em.fork().nativeUpdate(Book, { id }, { legalHold });
    if (updated === 0) {
      throw notFound(id);
    }
  }

  /** Validators, then the reviews (`deleteAll`) and the book, all in this request's transaction. */
  remove(id: number): Promise<DeletionReceipt> {
    return this.deletions.destroy(Book, id);
  }
}

function notFound(id: number): NotFoundException {
  return new NotFoundException({ statusCode: 404, error: 'Not Found', code: 'BOOK_NOT_FOUND', message: `Book ${id} does not exist.` });
}
