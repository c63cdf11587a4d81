import { Collection, type Rel } from '@mikro-orm/core';
import { Entity, OneToMany, OneToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Dependent, ValidateBeforeDestroy } from '../../../lib/index.js';
import { Book } from '../books/book.entity.js';
import { Article } from './article.entity.js';
import { AuthorProfile } from './author-profile.entity.js';
import { Follower } from './follower.entity.js';

/**
 * The root of the sample's deletions. Its policies are declared in two places on purpose: `books`
 * here with `@Dependent`, the others with `definePolicy()` in `app.module.ts`, which also puts
 * the author in tombstone mode (`deletedAt`).
 */
@Entity()
export class Author {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  /** While a contract runs, the author may not be deleted (see {@link Author.contractEnded}). */
  @Property({ type: 'datetime', nullable: true })
  contractEndsAt?: Date | null;

  /**
   * Tombstone: a deletion only sets it, which hides the author at once; the queue removes the
   * books and followers, then the author row, so the foreign keys to it can stay.
   */
  @Property({ type: 'datetime', nullable: true })
  deletedAt?: Date | null;

  /** Thousands of books, each with its own policies and validators: destroyed in the queue. */
  @OneToMany(() => Book, (book) => book.author)
  @Dependent('destroyAsync')
  books = new Collection<Book>(this);

  @OneToOne(() => AuthorProfile, (profile) => profile.author)
  profile?: Rel<AuthorProfile>;

  @OneToMany(() => Article, (article) => article.author)
  articles = new Collection<Article>(this);

  @OneToMany(() => Follower, (follower) => follower.author)
  followers = new Collection<Follower>(this);

  /**
   * An instance validator: the rule compares a date with the clock and names it in the reason,
   * which a set-based `{ where, message }` cannot. It sits on the deleted row itself, so it costs
   * one row whatever the author's size; on `Book` it would load every book in the request.
   */
  @ValidateBeforeDestroy()
  contractEnded(): string | undefined {
    if (this.contractEndsAt && this.contractEndsAt.getTime() > Date.now()) {
      return `author is under contract until ${this.contractEndsAt.toISOString()}`;
    }
    return undefined;
  }
}
