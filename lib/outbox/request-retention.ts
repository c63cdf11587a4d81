import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { pruneCompleted } from '../sql/request-statements.js';
import { DeletionOrphan } from './deletion-orphan.entity.js';
import { DeletionRequest } from './deletion-request.entity.js';

/** What one pruning pass removed. */
export interface PruneReport {
  /** Deletions (root requests) whose rows were removed. */
  deletions: number;
  /** Request rows removed (roots and their subtrees). */
  requests: number;
  orphans: number;
}

/**
 * Retention of the module's bookkeeping: completed deletions older than `retention.completedMs`
 * (a root request and everything it spawned, all completed) are removed with their orphan records.
 * Failed and open requests are kept, for `status()` and `retry()`. Runs as a job scheduler (see
 * `retention.intervalMs`) and on demand.
 *
 * @example
 * const { deletions } = await app.get(RequestRetention).prune();
 */
@Injectable()
export class RequestRetention {
  private readonly logger = new Logger(RequestRetention.name);

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  /** One pruning pass, in one transaction. With `completedMs: 0`, nothing is removed. */
  async prune(): Promise<PruneReport> {
    const { completedMs } = this.options.retention;
    if (completedMs === 0) {
      return { deletions: 0, requests: 0, orphans: 0 };
    }
    const before = new Date(Date.now() - completedMs);
    const report = await this.orm.em.fork().transactional((em) => pruneCompleted(em, em.getMetadata().get(DeletionRequest), em.getMetadata().get(DeletionOrphan), before));
    if (report.deletions > 0) {
      this.logger.log(`Pruned ${report.deletions} completed deletion(s): ${report.requests} request(s), ${report.orphans} orphan record(s).`);
    }
    return report;
  }
}
