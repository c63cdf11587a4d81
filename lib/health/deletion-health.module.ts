import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { DELETION_QUEUE } from '../queue/deletion-queue.constants.js';
import { DeletionHealthIndicator } from './deletion.health.js';

/**
 * Provides {@link DeletionHealthIndicator} for an application's `@nestjs/terminus` health checks.
 * Import it beside `DeletionModule` (whose `health` option sets its thresholds) and inject the
 * indicator into your health controller. It uses the application's `BullModule.forRoot()`
 * connection and MikroORM.
 *
 * @example
 * @Module({ imports: [TerminusModule, DeletionHealthModule], controllers: [HealthController] })
 * export class HealthModule {}
 */
@Module({
  imports: [TerminusModule, BullModule.registerQueue({ name: DELETION_QUEUE })],
  providers: [DeletionHealthIndicator],
  exports: [DeletionHealthIndicator],
})
export class DeletionHealthModule {}
