import { MikroORM } from '@mikro-orm/core';
import { Module } from '@nestjs/common';
import { CascadeExecutor } from './cascade/cascade-executor.js';
import { DeletionSubscriber } from './cascade/deletion.subscriber.js';
import { RESOLVED_DELETION_OPTIONS } from './deletion.constants.js';
import { ConfigurableDeletionModule, DELETION_MODULE_OPTIONS } from './deletion.module-definition.js';
import { resolveOptions } from './deletion.options.js';
import { DeletionService } from './deletion.service.js';
import { getDependentDeclarations } from './decorators/dependent.decorator.js';
import type { DeletionModuleOptions, ResolvedDeletionOptions } from './interfaces/deletion-module-options.interface.js';
import { PolicyRegistry } from './registry/policy-registry.js';
import { resolvePolicies } from './registry/policy-resolver.js';

/**
 * Declared deletion policies for MikroORM entities. Import once, in the root module, after
 * `MikroOrmModule.forRoot()`; configuration errors stop the application at bootstrap.
 *
 * @example
 * DeletionModule.forRoot({ policies: [definePolicy(Author, { books: 'destroy' })] })
 * DeletionModule.forRootAsync({ inject: [ConfigService], useFactory: (c) => ({ batchSize: c.get('BATCH') }) })
 */
@Module({
  providers: [
    {
      provide: RESOLVED_DELETION_OPTIONS,
      useFactory: (options: DeletionModuleOptions) => resolveOptions(options),
      inject: [DELETION_MODULE_OPTIONS],
    },
    {
      provide: PolicyRegistry,
      useFactory: (orm: MikroORM, options: ResolvedDeletionOptions) =>
        resolvePolicies({
          metadata: orm.getMetadata(),
          definitions: options.policies ?? [],
          decorated: getDependentDeclarations(),
          defaultBatchSize: options.batchSize,
        }),
      inject: [MikroORM, RESOLVED_DELETION_OPTIONS],
    },
    CascadeExecutor,
    DeletionSubscriber,
    DeletionService,
  ],
  exports: [DeletionService, PolicyRegistry],
})
export class DeletionModule extends ConfigurableDeletionModule {}
