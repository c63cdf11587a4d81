import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { DELETION_QUEUE } from './deletion-queue.constants.js';

/** The module builds its queue itself (Redis or PostgreSQL backend), so it closes it too. */
@Injectable()
export class DeletionQueueLifecycle implements OnApplicationShutdown {
  constructor(@InjectQueue(DELETION_QUEUE) private readonly queue: Queue) {}

  async onApplicationShutdown(): Promise<void> {
    await this.queue.close();
  }
}
