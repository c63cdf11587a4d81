import { MikroORM } from '@mikro-orm/core';
import { BullModule, getQueueToken, getSharedConfigToken } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { CascadeExecutor } from './cascade/cascade-executor.js';
import { DeletionSubscriber } from './cascade/deletion.subscriber.js';
import { DELETION_SUBSCRIBER, RESOLVED_DELETION_OPTIONS } from './deletion.constants.js';
import { EntityRemover } from './cascade/entity-remover.js';
import { LeanRemoval } from './cascade/lean-removal.js';
import { OrmObservers } from './cascade/orm-observers.js';
import { ConfigurableDeletionModule, DELETION_MODULE_OPTIONS } from './deletion.module-definition.js';
import { resolveOptions } from './deletion.options.js';
import { DeletionService } from './deletion.service.js';
import { DeletionDoctor } from './doctor/deletion-doctor.js';
import { DeletionEvents } from './events/deletion-events.js';
import { OutboxPublisher } from './outbox/outbox-publisher.js';
import { OutboxRelay } from './outbox/outbox-relay.js';
import { RequestWriter } from './outbox/request-writer.js';
import { CascadeBatches } from './queue/cascade-batches.js';
import { createCascadeProcessor } from './queue/cascade-processor.factory.js';
import { CascadeProcessor } from './queue/cascade.processor.js';
import { DELETION_QUEUE } from './queue/deletion-queue.constants.js';
import { createDeletionQueue } from './queue/deletion-queue.factory.js';
import { DeletionQueueLifecycle } from './queue/deletion-queue.lifecycle.js';
import { RequestCompletion } from './queue/request-completion.js';
import { RequestRunner } from './queue/request-runner.js';
import { PolicyRegistry } from './registry/policy-registry.js';
import { DeletionPlanner } from './plan/deletion-planner.js';
import { createPolicyRegistry } from './registry/registry.factory.js';
import { OrphanSweeper } from './sweeper/orphan-sweeper.js';
import { RequestRetention } from './outbox/request-retention.js';
import { ValidationHoister } from './validation/validation-hoister.js';

/**
 * Declared deletion policies for MikroORM entities, with queued cascades on BullMQ. Import once,
 * in the root module, beside `MikroOrmModule.forRoot()` and `BullModule.forRoot()` (whose
 * connection the module's queue uses). Configuration errors stop the application at bootstrap.
 *
 * @example
 * DeletionModule.forRoot({ policies: [definePolicy(Author, { books: 'destroyAsync' })] })
 * DeletionModule.forRootAsync({ inject: [ConfigService], useFactory: (c) => ({ batchSize: c.get('BATCH') }) })
 */
@Module({
  // With no queue named, registerQueue() only brings @nestjs/bullmq's core (its processor explorer
  // and registrar); the module builds its own queue below, on the backend its options choose.
  imports: [BullModule.registerQueue()],
  providers: [
    {
      provide: getQueueToken(DELETION_QUEUE),
      useFactory: createDeletionQueue,
      inject: [RESOLVED_DELETION_OPTIONS, { token: getSharedConfigToken(), optional: true }, MikroORM, PolicyRegistry],
    },
    DeletionQueueLifecycle,
    { provide: RESOLVED_DELETION_OPTIONS, useFactory: resolveOptions, inject: [DELETION_MODULE_OPTIONS] },
    { provide: PolicyRegistry, useFactory: createPolicyRegistry, inject: [MikroORM, RESOLVED_DELETION_OPTIONS] },
    {
      provide: CascadeProcessor,
      useFactory: createCascadeProcessor,
      inject: [getQueueToken(DELETION_QUEUE), RequestRunner, OutboxRelay, OrphanSweeper, RequestRetention, DeletionEvents, RESOLVED_DELETION_OPTIONS, MikroORM],
    },
    CascadeExecutor,
    CascadeBatches,
    DeletionDoctor,
    DeletionEvents,
    DeletionService,
    DeletionSubscriber,
    { provide: DELETION_SUBSCRIBER, useExisting: DeletionSubscriber },
    EntityRemover,
    LeanRemoval,
    OrmObservers,
    OutboxPublisher,
    OutboxRelay,
    OrphanSweeper,
    RequestCompletion,
    RequestRunner,
    RequestRetention,
    DeletionPlanner,
    RequestWriter,
    ValidationHoister,
  ],
  exports: [DeletionService, DeletionEvents, PolicyRegistry, DeletionDoctor, OrphanSweeper, RequestRetention, RESOLVED_DELETION_OPTIONS, getQueueToken(DELETION_QUEUE)],
})
export class DeletionModule extends ConfigurableDeletionModule {}
