import { defineConfig } from '@mikro-orm/postgresql';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { DELETION_ENTITIES } from '../../lib/index.js';
import { Author } from './authors/author.entity.js';
import { AuthorProfile } from './authors/author-profile.entity.js';
import { Book } from './authors/book.entity.js';
import { Review } from './authors/review.entity.js';

export const SAMPLE_ENTITIES = [Author, AuthorProfile, Book, Review];

export function sampleOrmConfig(databaseUrl = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/deletion_sample') {
  return defineConfig({
    clientUrl: databaseUrl,
    entities: [...SAMPLE_ENTITIES, ...DELETION_ENTITIES],
    metadataProvider: ReflectMetadataProvider,
  });
}
