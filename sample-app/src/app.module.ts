import { MikroOrmModule } from '@mikro-orm/nestjs';
import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { DeletionModule, definePolicy } from '../../lib/index.js';
import { Book } from './authors/book.entity.js';
import { AuthorsModule } from './authors/authors.module.js';
import { sampleOrmConfig } from './mikro-orm.config.js';

const redis = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

@Module({
  imports: [
    MikroOrmModule.forRoot(sampleOrmConfig()),
    BullModule.forRoot({ connection: { host: redis.hostname, port: Number(redis.port || 6379) } }),
    DeletionModule.forRoot({
      // Author's own relations are declared with @Dependent on the entity; Book's here.
      policies: [definePolicy(Book, { reviews: 'deleteAll' })],
    }),
    AuthorsModule,
  ],
})
export class AppModule {}
