import { EntityManager } from '@mikro-orm/postgresql';
import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { DeletionService, type DeletionReceipt } from '../../../lib/index.js';
import { Author } from './author.entity.js';
import { AuthorProfile } from './author-profile.entity.js';
import { Book } from './book.entity.js';
import { Review } from './review.entity.js';

export interface CreateAuthorInput {
  name: string;
  books: number;
  reviewsPerBook: number;
}

@Injectable()
export class AuthorsService {
  constructor(
    @Inject(EntityManager) private readonly em: EntityManager,
    @Inject(DeletionService) private readonly deletions: DeletionService,
  ) {}

  /** Creates an author with `books` books and `reviewsPerBook` reviews each, set-based for speed. */
  async create(input: CreateAuthorInput): Promise<{ id: number; books: number; reviews: number }> {
    const em = this.em.fork();
    return em.transactional(async (tx) => {
      const author = tx.create(Author, { name: input.name });
      tx.create(AuthorProfile, { bio: `About ${input.name}`, author });
      await tx.flush();
      const knex = tx.getConnection();
      const ctx = tx.getTransactionContext();
      await knex.execute(
        `insert into book (title, author_id) select 'Book ' || g, ? from generate_series(1, ?) g`,
        [author.id, input.books],
        'run',
        ctx,
      );
      await knex.execute(
        `insert into review (stars, book_id) select 1 + (g % 5), b.id from book b cross join generate_series(1, ?) g where b.author_id = ?`,
        [input.reviewsPerBook, author.id],
        'run',
        ctx,
      );
      return { id: author.id, books: input.books, reviews: input.books * input.reviewsPerBook };
    });
  }

  async findOne(id: number): Promise<{ id: number; name: string; books: number; reviews: number }> {
    const em = this.em.fork();
    const author = await em.findOne(Author, id);
    if (!author) {
      throw new NotFoundException(`Author ${id} does not exist.`);
    }
    const books = await em.count(Book, { author: id });
    const reviews = await em.count(Review, { book: { author: id } });
    return { id: author.id, name: author.name, books, reviews };
  }

  remove(id: number): Promise<DeletionReceipt> {
    return this.deletions.destroy(Author, id);
  }
}
