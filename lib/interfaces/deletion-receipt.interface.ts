/** What `DeletionService.destroy()` returns. */
export interface DeletionReceipt {
  /**
   * The deleted entity's class name and primary key, as JSON carries it: integers as numbers,
   * bigint keys as decimal strings (however MikroORM maps them), uuid and text keys as strings.
   */
  entity: string;
  id: unknown;
  /**
   * `completed`: everything happened in the request's transaction.
   * `pending`: part of the cascade was queued; follow it with `status(requestId)`.
   */
  status: 'completed' | 'pending';
  requestId?: string;
}
