import { MikroOrmModule } from '@mikro-orm/nestjs';
import { BullModule } from '@nestjs/bullmq';
import { Module, type DynamicModule } from '@nestjs/common';
import { DeletionModule, definePolicy } from '../../lib/index.js';
import { redisConnection, type SampleAppConfig } from './app.config.js';
import { Author } from './authors/author.entity.js';
import { AuthorsModule } from './authors/authors.module.js';
import { BooksModule } from './books/books.module.js';
import { DeletionsModule } from './deletions/deletions.module.js';
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
 */
@Module({})
export class AppModule {
  static forRoot(config: SampleAppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        MikroOrmModule.forRoot(sampleOrmConfig(config.databaseUrl)),
        BullModule.forRoot({ connection: redisConnection(config.redisUrl), prefix: config.queuePrefix }),
        DeletionModule.forRoot({
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
