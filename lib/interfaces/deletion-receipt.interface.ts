/** What `DeletionService.destroy()` returns. */
export interface DeletionReceipt {
  /** The deleted entity's class name and primary key. */
  entity: string;
  id: unknown;
  /**
   * `completed`: everything happened in the request's transaction.
   * `pending`: part of the cascade was queued; follow it with `status(requestId)`.
   */
  status: 'completed' | 'pending';
  requestId?: string;
}
