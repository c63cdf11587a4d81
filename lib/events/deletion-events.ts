import { EventEmitter } from 'node:events';
import { Injectable, Logger } from '@nestjs/common';
import type { RequestError } from '../outbox/deletion-request.entity.js';

/** Emitted when a request and its whole subtree have completed. */
export interface DeletionCompletedEvent {
  requestId: string;
  rootId: string;
  /** True for the request a deletion started (its receipt's `requestId`). */
  root: boolean;
  entity: string;
  path: string;
}

/** Emitted when a request is marked `failed`: retries are exhausted or a validator refused. */
export interface DeletionFailedEvent {
  requestId: string;
  rootId: string;
  entity: string;
  path: string;
  error: RequestError;
}

interface DeletionEventMap {
  completed: [DeletionCompletedEvent];
  failed: [DeletionFailedEvent];
}

/**
 * Completion and failure of queued cascades, in the process whose worker ran them.
 *
 * @example
 * constructor(events: DeletionEvents) {
 *   events.on('failed', (e) => alerts.page(`deletion ${e.rootId} failed: ${e.error.message}`));
 * }
 */
@Injectable()
export class DeletionEvents extends EventEmitter<DeletionEventMap> {
  private readonly logger = new Logger(DeletionEvents.name);

  /**
   * Calls every listener, each on its own: a listener that throws (or whose promise rejects) is
   * logged and changes nothing, neither for the deletion it is told about nor for the other listeners.
   */
  override emit<K extends keyof DeletionEventMap>(event: K, ...args: DeletionEventMap[K]): boolean {
    const listeners = this.rawListeners(event) as ((...values: DeletionEventMap[K]) => unknown)[];
    for (const listener of listeners) {
      try {
        const result = listener.apply(this, args);
        if (result instanceof Promise) {
          result.catch((error: unknown) => this.failedListener(event, error));
        }
      } catch (error) {
        this.failedListener(event, error);
      }
    }
    return listeners.length > 0;
  }

  private failedListener(event: string, error: unknown): void {
    this.logger.error(`A "${event}" listener of DeletionEvents threw: ${error instanceof Error ? error.message : String(error)}`);
  }
}
