import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';
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
export class DeletionEvents extends EventEmitter<DeletionEventMap> {}
