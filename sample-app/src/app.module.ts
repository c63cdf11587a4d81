import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module } from '@nestjs/common';
import { DeletionModule, definePolicy } from '../../lib/index.js';
import { Book } from './authors/book.entity.js';
import { AuthorsModule } from './authors/authors.module.js';
import { sampleOrmConfig } from './mikro-orm.config.js';

@Module({
  imports: [
    MikroOrmModule.forRoot(sampleOrmConfig()),
    DeletionModule.forRoot({
      // Author's own relations are declared with @Dependent on the entity; Book's here.
      policies: [definePolicy(Book, { reviews: 'deleteAll' })],
    }),
    AuthorsModule,
  ],
})
export class AppModule {}
