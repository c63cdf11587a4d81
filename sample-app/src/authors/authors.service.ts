import { EntityManager } from '@mikro-orm/postgresql';
import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { DeletionService, type DeletionPlan, type DeletionReceipt } from '../../../lib/index.js';
import { Book } from '../books/book.entity.js';
import { Review } from '../books/review.entity.js';
import { Article } from './article.entity.js';
import { Author } from './author.entity.js';
import { AuthorProfile } from './author-profile.entity.js';
import type { AuthorSummary, BookLine, CreatedAuthor } from './author.views.js';
import type { CreateAuthorInput } from './create-author.dto.js';
import { Follower } from './follower.entity.js';

@Injectable()
export class AuthorsService {
  constructor(
    @Inject(EntityManager) private readonly em: EntityManager,
    @Inject(DeletionService) private readonly deletions: DeletionService,
  ) {}

  /**
   * Creates an author, its profile, and its books, reviews, followers and articles with one
   * set-based INSERT each (`generate_series`), so a million rows take seconds, not minutes.
   */
  async create(input: CreateAuthorInput): Promise<CreatedAuthor> {
    return this.em.fork().transactional(async (tx) => {
      const author = tx.create(Author, { name: input.name, contractEndsAt: input.contractEndsAt });
      tx.create(AuthorProfile, { bio: `About ${input.name}`, author });
      await tx.flush();
      const connection = tx.getConnection();
      const run = (sql: string, params: unknown[]) => connection.execute(sql, params, 'run', tx.getTransactionContext());
      await run(`insert into book (title, author_id) select 'Book ' || g, ? from generate_series(1, ?) g`, [author.id, input.books]);
      await run(
        `insert into review (stars, book_id) select 1 + (g % 5), b.id from book b cross join generate_series(1, ?) g where b.author_id = ?`,
        [input.reviewsPerBook, author.id],
      );
      await run(`insert into follower (reader_name, author_id) select 'Reader ' || g, ? from generate_series(1, ?) g`, [author.id, input.followers]);
      await run(`insert into article (title, author_id) select 'Article ' || g, ? from generate_series(1, ?) g`, [author.id, input.articles]);
      return {
        id: author.id,
        name: author.name,
        books: input.books,
        reviews: input.books * input.reviewsPerBook,
        followers: input.followers,
        articles: input.articles,
      };
    });
  }

  /** @throws NotFoundException when no author has this id, or its deletion has started. */
  async summary(id: number): Promise<AuthorSummary> {
    const em = this.em.fork();
    const author = await this.find(em, id);
    const [books, reviews, followers, articles, profiles] = await Promise.all([
      em.fork().count(Book, { author: id }),
      em.fork().count(Review, { book: { author: id } }),
      em.fork().count(Follower, { author: id }),
      em.fork().count(Article, { author: id }),
      em.fork().count(AuthorProfile, { author: id }),
    ]);
    return { id, name: author.name, contractEndsAt: author.contractEndsAt ?? null, hasProfile: profiles > 0, books, reviews, followers, articles };
  }

  /** A keyset page of the author's books, by id. */
  async books(id: number, page: { after: number; limit: number }): Promise<BookLine[]> {
    const em = this.em.fork();
    await this.find(em, id);
    const books = await em.find(Book, { author: id, id: { $gt: page.after } }, { orderBy: { id: 'asc' }, limit: page.limit });
    return books.map((book) => ({ id: book.id, title: book.title, legalHold: book.legalHold }));
  }

  /** Through the declared policies; see `AppModule` for what happens to each relation. */
  remove(id: number): Promise<DeletionReceipt> {
    return this.deletions.destroy(Author, id);
  }

  plan(id: number): Promise<DeletionPlan> {
    return this.deletions.plan(Author, id);
  }

  private async find(em: EntityManager, id: number): Promise<Author> {
    // The tombstone filter hides an author whose deletion has started: it is gone for readers.
    const author = await em.findOne(Author, id);
    if (!author) {
      throw new NotFoundException({ statusCode: 404, error: 'Not Found', code: 'AUTHOR_NOT_FOUND', message: `Author ${id} does not exist.` });
    }
    return author;
  }
}
