import { MikroOrmModule } from '@mikro-orm/nestjs';
import { BullModule } from '@nestjs/bullmq';
import { Module, type DynamicModule } from '@nestjs/common';
import { DeletionModule, definePolicy } from '../../lib/index.js';
import { QUEUE_SCHEMA, redisConnection, type SampleAppConfig } from './app.config.js';
import { Author } from './authors/author.entity.js';
import { AuthorsModule } from './authors/authors.module.js';
import { BooksModule } from './books/books.module.js';
import { DeletionsModule } from './deletions/deletions.module.js';
import type { EmbeddedPostgres } from './embedded/embedded-postgres.js';
import { EmbeddedPostgresModule } from './embedded/embedded-postgres.module.js';
import { HealthModule } from './health/health.module.js';
import { sampleOrmConfig } from './mikro-orm.config.js';

/**
 * The sample application. Deletion policies, as a reader meets them:
 *
 * | relation | policy | declared | when |
 * |---|---|---|---|
 * | Author.books | destroyAsync | `@Dependent` on Author | queue, in batches; each book's own policies apply |
 * | Book.reviews | deleteAll | `@Dependent` on Book | with its books (request or queue batch) |
 * | Author.followers | deleteAllAsync | here | queue, set-based batches |
 * | Author.profile | destroy | here | request |
 * | Author.articles | nullify | here | request |
 *
 * Author is in tombstone mode, so every author deletion is queued (202) and no foreign key had to
 * be dropped; a book's deletion is synchronous (204). Validators: `Book` (set-based, legal hold)
 * and `Author` (instance, running contract).
 *
 * The queue is on Redis when `redisUrl` is given, else on PostgreSQL (BullMQ's PostgreSQL backend,
 * schema `bullmq` of the app's database) and no Redis connection is made.
 */
@Module({})
export class AppModule {
  /**
   * `embedded`: the in-process PostgreSQL that serves `config.databaseUrl`, if any; Nest stops it
   * after every other module has shut down (see `EmbeddedPostgresModule`).
   */
  static forRoot(config: SampleAppConfig & { databaseUrl: string }, embedded?: EmbeddedPostgres): DynamicModule {
    const { databaseUrl, redisUrl } = config;
    return {
      module: AppModule,
      imports: [
        // First: the last module to shut down.
        ...(embedded ? [EmbeddedPostgresModule.forRoot(embedded)] : []),
        // PGlite runs one query at a time whatever the number of connections: a few are enough.
        MikroOrmModule.forRoot(sampleOrmConfig(databaseUrl, embedded ? { min: 1, max: 4 } : undefined)),
        ...(redisUrl ? [BullModule.forRoot({ connection: redisConnection(redisUrl), prefix: config.queuePrefix })] : []),
        DeletionModule.forRoot({
          ...(redisUrl ? {} : { queue: { backend: 'postgres', postgres: { connection: databaseUrl, schema: QUEUE_SCHEMA } } }),
          // PGlite delivers no NOTIFY, so an idle worker wakes only for the next delayed job, the
          // outbox relay's (every 10 s by default): every 2 s, a new deletion starts within ~2 s.
          ...(embedded && !redisUrl ? { relay: { intervalMs: 2000 } } : {}),
          policies: [
            definePolicy(
              Author,
              { profile: 'destroy', articles: 'nullify', followers: { policy: 'deleteAllAsync', batchSize: 5000 } },
              { tombstone: 'deletedAt' },
            ),
          ],
        }),
        AuthorsModule,
        BooksModule,
        DeletionsModule,
        HealthModule,
      ],
    };
  }
}
