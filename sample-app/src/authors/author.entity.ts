import { Collection, type Rel } from '@mikro-orm/core';
import { Entity, OneToMany, OneToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Dependent } from '../../../lib/index.js';
import { Book } from './book.entity.js';
import { AuthorProfile } from './author-profile.entity.js';

@Entity()
export class Author {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => Book, (book) => book.author)
  @Dependent('destroy')
  books = new Collection<Book>(this);

  @OneToOne(() => AuthorProfile, (profile) => profile.author)
  @Dependent('destroy')
  profile?: Rel<AuthorProfile>;
}
