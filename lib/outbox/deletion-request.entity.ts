import { EntitySchema, type Opt } from '@mikro-orm/core';

export const REQUEST_STATES = ['pending', 'running', 'completed', 'failed'] as const;
export type RequestState = (typeof REQUEST_STATES)[number];

export type RequestOrigin = 'deletion' | 'sweeper';

/** How far one relation of a request has been walked. */
export interface RelationProgress {
  policy: string;
  childEntity: string;
  /** Keyset cursor: the last child primary key (or orphan record id) handled. */
  cursor: unknown;
  processed: number;
  done: boolean;
  /** How many times the relation was walked from the start (a tombstoned parent's late children reopen it). */
  walks?: number;
}

/** Why a request failed, as stored and as `status()` reports it. */
export interface RequestError {
  message: string;
  code?: string;
  [detail: string]: unknown;
}

/**
 * One durable unit of asynchronous cascade work: "apply the async policies of `entity` to the rows
 * `parentIds`". Written in the same transaction as the delete that caused it, so it exists exactly
 * when that delete committed. Nested async work becomes child requests (`parentId`), all sharing
 * the `rootId` of the deletion that started it.
 *
 * Register it (or `DELETION_ENTITIES`) in your MikroORM `entities`, so migrations create the table.
 */
export class DeletionRequest {
  id!: string;
  rootId!: string;
  parentId?: string | null;
  entity!: string;
  parentIds!: unknown[];
  path!: string;
  state: Opt<RequestState> = 'pending';
  progress: Record<string, RelationProgress> = {};
  /** The request's own relations are all walked; it completes once its child requests have. */
  ownWorkDone: Opt<boolean> = false;
  /** Tombstone mode: the parent rows are hard-deleted when the subtree completes. */
  tombstone: Opt<boolean> = false;
  /** `deletion`: written by a delete; `sweeper`: filed by the orphan sweeper for rows whose parent is gone. */
  origin: Opt<RequestOrigin> = 'deletion';
  attempts: Opt<number> = 0;
  error?: RequestError | null;
  createdAt: Opt<Date> = new Date();
  updatedAt: Opt<Date> = new Date();
  startedAt?: Date | null;
  completedAt?: Date | null;
}

export const DeletionRequestSchema = new EntitySchema<DeletionRequest>({
  class: DeletionRequest,
  tableName: 'deletion_request',
  indexes: [{ properties: ['state', 'createdAt'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    rootId: { type: 'uuid', index: true },
    parentId: { type: 'uuid', nullable: true, index: true },
    entity: { type: 'text' },
    parentIds: { type: 'json' },
    path: { type: 'text' },
    state: { type: 'text', default: 'pending' },
    progress: { type: 'json' },
    ownWorkDone: { type: 'boolean', default: false },
    tombstone: { type: 'boolean', default: false },
    origin: { type: 'text', default: 'deletion' },
    attempts: { type: 'integer', default: 0 },
    error: { type: 'json', nullable: true },
    createdAt: { type: 'datetime', defaultRaw: 'now()' },
    updatedAt: { type: 'datetime', defaultRaw: 'now()' },
    startedAt: { type: 'datetime', nullable: true },
    completedAt: { type: 'datetime', nullable: true },
  },
});
