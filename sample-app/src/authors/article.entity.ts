import type { Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Author } from './author.entity.js';

/** A press article about an author: it outlives the author, unattributed (`nullify`). */
@Entity()
export class Article {
  @PrimaryKey()
  id!: number;

  @Property()
  title!: string;

  @ManyToOne(() => Author, { nullable: true, index: true })
  author?: Rel<Author> | null;
}
