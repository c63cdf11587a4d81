import type { PoolConfig } from '@mikro-orm/core';
import { defineConfig } from '@mikro-orm/postgresql';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { DELETION_ENTITIES } from '../../lib/index.js';
import { QUEUE_SCHEMA } from './app.config.js';
import { Article } from './authors/article.entity.js';
import { Author } from './authors/author.entity.js';
import { AuthorProfile } from './authors/author-profile.entity.js';
import { Follower } from './authors/follower.entity.js';
import { Book } from './books/book.entity.js';
import { Review } from './books/review.entity.js';

export const SAMPLE_ENTITIES = [Author, AuthorProfile, Article, Follower, Book, Review];

/**
 * MikroORM on `databaseUrl`, with the deletion module's own tables (its outbox) beside the sample's.
 * `pool`: the connection pool's size, MikroORM's default when absent.
 *
 * The schema generator ignores the schema of BullMQ's PostgreSQL backend (`bullmq`, when the queue
 * is on PostgreSQL): `schema.update()` would otherwise see its tables and functions as unknown
 * and drop them.
 */
export function sampleOrmConfig(databaseUrl: string, pool?: PoolConfig) {
  return defineConfig({
    clientUrl: databaseUrl,
    entities: [...SAMPLE_ENTITIES, ...DELETION_ENTITIES],
    metadataProvider: ReflectMetadataProvider,
    schemaGenerator: { ignoreSchema: [QUEUE_SCHEMA] },
    ...(pool ? { pool } : {}),
  });
}
