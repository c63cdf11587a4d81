import { MikroORM } from '@mikro-orm/core';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { DELETION_QUEUE } from '../queue/deletion-queue.constants.js';
import { DeletionRequest } from './deletion-request.entity.js';
import { OutboxPublisher } from './outbox-publisher.js';

/** Requests the relay looks at per run; the next run takes the rest. */
const RELAY_BATCH = 500;

/**
 * The outbox's safety net: finds open requests that have no live job (the queue was down at
 * commit time, the process died between commit and enqueue, Redis lost its data) and enqueues
 * them again. Requests waiting for their children need no job of their own, unless every child
 * has completed and their completion was lost.
 */
@Injectable()
export class OutboxRelay {
  private readonly logger = new Logger(OutboxRelay.name);

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @InjectQueue(DELETION_QUEUE) private readonly queue: Queue,
    @Inject(OutboxPublisher) private readonly publisher: OutboxPublisher,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  /** Returns the ids it enqueued. */
  async run(): Promise<string[]> {
    const em = this.orm.em.fork();
    const before = new Date(Date.now() - this.options.relay.graceMs);
    const open = await em.find(
      DeletionRequest,
      { state: { $in: ['pending', 'running'] }, updatedAt: { $lt: before } },
      { orderBy: { createdAt: 'asc' }, limit: RELAY_BATCH, fields: ['id', 'ownWorkDone'] },
    );
    const waiting = open.filter((r) => r.ownWorkDone).map((r) => r.id);
    const stuck = new Set(waiting.length ? await this.withoutOpenChildren(waiting) : []);
    const candidates = open.filter((r) => !r.ownWorkDone || stuck.has(r.id)).map((r) => r.id);
    const missing: string[] = [];
    for (const id of candidates) {
      const job = await this.queue.getJob(id);
      const state = job ? await job.getState() : 'unknown';
      if (state === 'failed' || state === 'completed' || state === 'unknown') {
        missing.push(id);
      }
    }
    if (missing.length > 0 && (await this.publisher.replace(missing))) {
      this.logger.log(`Relay enqueued ${missing.length} deletion request(s) that had no job: ${missing.join(', ')}`);
    }
    return missing;
  }

  private async withoutOpenChildren(ids: string[]): Promise<string[]> {
    const rows = await this.orm.em
      .fork()
      .find(DeletionRequest, { parentId: { $in: ids }, state: { $ne: 'completed' } }, { fields: ['parentId'] });
    const busy = new Set(rows.map((r) => r.parentId));
    return ids.filter((id) => !busy.has(id));
  }
}
