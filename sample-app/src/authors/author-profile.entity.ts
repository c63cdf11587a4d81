import type { Rel } from '@mikro-orm/core';
import { Entity, OneToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Author } from './author.entity.js';

/** One per author (the owning side of a one-to-one): destroyed with the author, in the request. */
@Entity()
export class AuthorProfile {
  @PrimaryKey()
  id!: number;

  @Property({ type: 'text' })
  bio!: string;

  @OneToOne(() => Author, (author) => author.profile, { owner: true })
  author!: Rel<Author>;
}
