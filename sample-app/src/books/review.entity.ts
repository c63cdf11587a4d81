import type { Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Book } from './book.entity.js';

@Entity()
export class Review {
  @PrimaryKey()
  id!: number;

  @Property()
  stars!: number;

  @ManyToOne(() => Book, { index: true })
  book!: Rel<Book>;
}
