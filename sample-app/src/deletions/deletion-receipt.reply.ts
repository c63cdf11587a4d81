import type { Response } from 'express';
import type { DeletionReceipt } from '../../../lib/index.js';

/** The body of a 202: the receipt, and where to follow the queued part of the deletion. */
export interface AcceptedDeletion extends DeletionReceipt {
  status: 'pending';
  requestId: string;
  /** `GET` it for the request's state and progress. */
  statusUrl: string;
}

/** Where the status of deletion request `requestId` is served. */
export function deletionStatusUrl(requestId: string): string {
  return `/deletions/${requestId}`;
}

/**
 * Answers a DELETE from its receipt: 204 with no body when everything happened in the request,
 * 202 with the request id and its status URL (also in `Location`) when work was queued.
 * Written to the response directly: `@HttpCode()` cannot depend on the outcome.
 */
export function replyWithReceipt(res: Response, receipt: DeletionReceipt): void {
  if (receipt.status === 'completed') {
    res.status(204).end();
    return;
  }
  if (receipt.requestId === undefined) {
    // A pending deletion nobody could follow: a 500 says so, a 204 would hide it.
    throw new Error(`The deletion of ${receipt.entity} ${JSON.stringify(receipt.id)} is pending but has no request id.`);
  }
  const statusUrl = deletionStatusUrl(receipt.requestId);
  const body: AcceptedDeletion = { ...receipt, status: 'pending', requestId: receipt.requestId, statusUrl };
  res.status(202).location(statusUrl).json(body);
}
