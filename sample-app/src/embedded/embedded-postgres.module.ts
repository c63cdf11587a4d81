import { Global, Module, type DynamicModule } from '@nestjs/common';
import { EmbeddedPostgres } from './embedded-postgres.js';

/**
 * Hands an already started `EmbeddedPostgres` to Nest, so that Nest stops it on `app.close()` or
 * on a signal (`enableShutdownHooks()`). Global on purpose: Nest runs shutdown hooks from the root
 * module outwards and global modules last, in the reverse of their registration order, so a
 * global module imported first in the root module shuts down after every other one, MikroORM's
 * included (the queue and the worker, in the deletion module, close before any global module).
 */
@Global()
@Module({})
export class EmbeddedPostgresModule {
  static forRoot(embedded: EmbeddedPostgres): DynamicModule {
    return { module: EmbeddedPostgresModule, providers: [{ provide: EmbeddedPostgres, useValue: embedded }], exports: [EmbeddedPostgres] };
  }
}
