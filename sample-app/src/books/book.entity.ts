import { Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, Index, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Dependent, ValidateBeforeDestroy } from '../../../lib/index.js';
import { Author } from '../authors/author.entity.js';
import { Review } from './review.entity.js';

/**
 * A set-based validator: one query per deletion, whatever the number of books, hoisted onto the
 * author's deletion (409 in the request, before anything is written or queued). The partial index
 * serves it: it holds only the few books under legal hold.
 */
@Entity()
@ValidateBeforeDestroy<Book>({ where: { legalHold: true }, message: 'book is under legal hold' })
@Index({ name: 'book_author_id_legal_hold_index', properties: ['author'], where: { legalHold: true } })
export class Book {
  @PrimaryKey()
  id!: number;

  @Property()
  title!: string;

  @Property({ default: false })
  legalHold: Opt<boolean> = false;

  @ManyToOne(() => Author, { index: true })
  author!: Rel<Author>;

  /**
   * Set-based, in the same transaction as the books' own delete: in the request for one book
   * (DELETE /books/:id), in each queued batch when an author's books are destroyed.
   */
  @OneToMany(() => Review, (review) => review.book)
  @Dependent('deleteAll')
  reviews = new Collection<Review>(this);
}
