import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { DeletionHealthIndicator } from './deletion.health.js';

/**
 * Provides {@link DeletionHealthIndicator} for an application's `@nestjs/terminus` health checks.
 * Import it beside `DeletionModule` (whose `health` option sets its thresholds) and inject the
 * indicator into your health controller. It probes the queue `DeletionModule` (global) exports,
 * whichever its backend, and MikroORM.
 *
 * @example
 * @Module({ imports: [TerminusModule, DeletionHealthModule], controllers: [HealthController] })
 * export class HealthModule {}
 */
@Module({
  imports: [TerminusModule],
  providers: [DeletionHealthIndicator],
  exports: [DeletionHealthIndicator],
})
export class DeletionHealthModule {}
