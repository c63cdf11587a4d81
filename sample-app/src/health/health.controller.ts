import { Controller, Get, Inject } from '@nestjs/common';
import { HealthCheck, HealthCheckService, MikroOrmHealthIndicator, type HealthCheckResult } from '@nestjs/terminus';
import { DeletionHealthIndicator } from '../../../lib/health/index.js';

@Controller('health')
export class HealthController {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(MikroOrmHealthIndicator) private readonly database: MikroOrmHealthIndicator,
    @Inject(DeletionHealthIndicator) private readonly deletion: DeletionHealthIndicator,
  ) {}

  /**
   * `GET /health` (Terminus): `database` (a MikroORM ping) and `deletion` (the queue answers, its
   * job counts, failed deletion requests, age of the oldest open one). 200 with `status: 'ok'`,
   * or 503 with `status: 'error'` and the reason of each indicator that is down.
   */
  @Get()
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    return this.health.check([() => this.database.pingCheck('database').withTimeout(2000), () => this.deletion.isHealthy('deletion')]);
  }
}
