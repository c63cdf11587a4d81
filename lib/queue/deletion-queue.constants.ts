/** The BullMQ queue the module registers on the application's connection. */
export const DELETION_QUEUE = 'deletion-cascade';

/** Job names on that queue. */
export const CASCADE_JOB = 'cascade';
export const RELAY_JOB = 'relay';
export const RELAY_SCHEDULER_ID = 'deletion-relay';
export const SWEEP_JOB = 'sweep';
export const SWEEP_SCHEDULER_ID = 'deletion-sweeper';
export const PRUNE_JOB = 'prune';
export const PRUNE_SCHEDULER_ID = 'deletion-retention';

/** Payload of a cascade job; the job id is the request id too, so duplicates collapse. */
export interface CascadeJobData {
  requestId: string;
}
