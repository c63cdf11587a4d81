import type { Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Author } from './author.entity.js';

/**
 * A reader following an author: many rows, no hooks, no validators, so they go set-based in the
 * queue (`deleteAllAsync`). The foreign key keeps its constraint: the author is tombstoned.
 */
@Entity()
export class Follower {
  @PrimaryKey()
  id!: number;

  @Property()
  readerName!: string;

  @ManyToOne(() => Author, { index: true })
  author!: Rel<Author>;
}
