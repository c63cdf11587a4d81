import type { Rel } from '@mikro-orm/core';
import { Entity, OneToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Author } from './author.entity.js';

@Entity()
export class AuthorProfile {
  @PrimaryKey()
  id!: number;

  @Property({ type: 'text' })
  bio!: string;

  @OneToOne(() => Author, (author) => author.profile, { owner: true })
  author!: Rel<Author>;
}
